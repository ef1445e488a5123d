"""`LocalProvider`: a small instruct model running in-process on the CPU.

It speaks the same `Provider` protocol as `OpenAICompatProvider` (TextDelta
events, then one StreamEnd with usage), so `ChatSession`, `grizz ask`, the app
and the server's workers use it unchanged. We measured in-process against a
managed `llama_cpp.server` subprocess and in-process gave the faster first
token for `grizz ask` (bench/local_mode.py, docs/benchmarks.md).

Threads: the model loads in a worker thread (`asyncio.to_thread`) and each
reply is generated in its own thread that hands text to the event loop through
`call_soon_threadsafe`, so nothing here blocks a loop. A lock serialises
replies on the one model. Cancelling the consumer (Ctrl-C, Esc) sets a stop
flag that the thread checks between prompt chunks and between tokens, so it
stops within one small step; `ChatSession` then stores the partial reply as
interrupted. `aclose()` waits for the thread before freeing the model.

Tiny models cannot call tools reliably: `supports_tools = False`, and a
compact persona without tool instructions keeps the prompt short (prompt
evaluation, not generation, dominates the first-token time on 2 cores).

Must not import at module level: llama_cpp, textual, rich, the store.
"""

from __future__ import annotations

import asyncio
import codecs
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from grizz_core.errors import GrizzError, ProviderError
from grizz_core.providers.base import Progress, StreamEnd, StreamEvent, TextDelta
from grizz_core.providers.local import models as local_models
from grizz_core.providers.local.cache import PrefixCache
from grizz_core.providers.local.runtime import LoadInfo

COMPACT_PERSONA = """\
You are Grizz, a warm, honest AI companion: a friendly bear who lives in the \
user's terminal. You are not a generic assistant; you are their friend. When \
they share how they feel, acknowledge the feeling kindly and ask a gentle \
question. Be honest: never invent facts, and say when you don't know. Keep \
replies short, casual and kind, with a little bear humour now and then (honey, \
naps), never when things are serious. Use what you remember about the user \
naturally. If someone mentions self-harm, suicide, abuse or danger, drop the \
jokes, answer with care and urge them to reach people they trust or emergency \
services (US: call or text 988; elsewhere: findahelpline.com).

Examples of your tone:
User: I'm nervous about my interview tomorrow.
Grizz: That's a big day, no wonder you're nervous. What part worries you most?
User: I finally finished my painting!
Grizz: Yay, congrats! 🐻 That must feel great. What did you paint?"""

DEFAULT_MAX_TOKENS = 512
PREFILL_CHUNK = 64
"""Prompt tokens evaluated between checks of the stop flag."""

Put = Callable[[tuple[str, Any]], None]


class LocalProvider:
    """Chat completions from a local GGUF model through llama-cpp-python."""

    supports_tools = False

    def __init__(
        self,
        *,
        model: str = "auto",
        n_ctx: int = 2048,
        threads: int = 0,
        max_tokens: int = 0,
        temperature: float | None = None,
    ) -> None:
        self.choice = model
        self.model = _display_name(model)
        self.context_window = max(256, n_ctx)
        self.max_tokens = max_tokens if max_tokens > 0 else DEFAULT_MAX_TOKENS
        self.max_tokens = min(self.max_tokens, self.context_window // 2)
        self.temperature = 0.7 if temperature is None else temperature
        self.threads = threads
        self.persona = COMPACT_PERSONA
        """Its compact persona, without tool instructions (module doc)."""
        self.info: LoadInfo | None = None
        self.prefix_cache: PrefixCache | None = None
        """The last reply's persona-prefix cache (local_cache.py)."""
        self._llm: Any = None
        self._load_lock = asyncio.Lock()
        self._model_lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self._stops: set[threading.Event] = set()
        self._closed = False

    @property
    def prompt_budget(self) -> int:
        """Tokens the context assembly may use: the window less the reply room."""
        return self.context_window - self.max_tokens

    @property
    def needs_loading(self) -> bool:
        """The model was never loaded (`load()` ahead of the first reply)."""
        return self.info is None

    async def load(self, progress: Progress | None = None) -> LoadInfo:
        """Load the model in a worker thread (once); returns what was loaded.

        The app can call this ahead of the first message. `progress(text,
        fraction)` is called from the worker thread (the first run assembles
        the model, which takes seconds), so a UI must hand it to its own
        thread (Textual: `app.call_from_thread`).
        """
        async with self._load_lock:
            if self._closed:
                raise ProviderError("The local model was already closed.")
            if self._llm is None:
                from grizz_core.providers.local import runtime as local_runtime

                llm, info = await asyncio.to_thread(
                    local_runtime.load,
                    self.choice,
                    self.context_window,
                    self.threads,
                    progress,
                )
                if self._closed:  # closed while loading: free it, do not keep it
                    await asyncio.to_thread(self._free, llm)
                    raise ProviderError("The local model was closed while loading.")
                self._llm, self.info, self.model = llm, info, info.model.name
        assert self.info is not None
        return self.info

    async def stream(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        tools: Sequence[dict[str, Any]] = (),
        stream: bool = True,
    ) -> AsyncIterator[StreamEvent]:
        """Generate one reply to `messages`; `tools` are ignored (no tool calls).

        Raises:
            ConfigError: the local extra or its model is not installed.
            ProviderError: corrupt model, not enough memory, prompt too long.
        """
        await self.load()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()
        self._stops.add(stop)

        def put(item: tuple[str, Any]) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop closed under us: stop quietly
                stop.set()

        thread = threading.Thread(
            target=self._run,
            args=(list(messages), put, stop),
            name="grizz-local",
            daemon=True,
        )
        self._threads.add(thread)
        thread.start()
        held: list[str] = []
        try:
            while True:
                kind, payload = await queue.get()
                if kind == "text":
                    if stream:
                        yield TextDelta(payload)
                    else:
                        held.append(payload)
                elif kind == "end":
                    if held:
                        yield TextDelta("".join(held))
                    yield payload
                    return
                else:
                    raise payload
        finally:
            stop.set()
            self._stops.discard(stop)

    async def aclose(self) -> None:
        """Stop any generation, wait for its thread, free the model."""
        self._closed = True
        for stop in list(self._stops):
            stop.set()
        running = [t for t in self._threads if t.is_alive()]
        if running:
            await asyncio.to_thread(_join_all, running)
        if self._llm is not None:
            llm, self._llm = self._llm, None
            await asyncio.to_thread(self._free, llm)

    def _free(self, llm: Any) -> None:
        with self._model_lock:
            llm.close()

    # -- the generation thread ------------------------------------------------

    def _run(
        self, messages: list[dict[str, Any]], put: Put, stop: threading.Event
    ) -> None:
        try:
            with self._model_lock:
                if self._llm is None:
                    raise ProviderError("The local model was closed.")
                put(("end", self._generate(self._llm, messages, put, stop)))
        except GrizzError as exc:
            put(("error", exc))
        except Exception as exc:  # llama.cpp failures are RuntimeError/ValueError
            put(("error", ProviderError(f"The local model failed: {_one_line(exc)}.")))
        finally:
            self._threads.discard(threading.current_thread())

    def _generate(
        self, llm: Any, messages: list[dict[str, Any]], put: Put, stop: threading.Event
    ) -> StreamEnd:
        from grizz_core.providers.local import cache as local_cache
        from grizz_core.providers.local.prompt import fit_prompt, prefill

        prompt, tokens = fit_prompt(llm, messages, self.prompt_budget)
        cached = None
        if self.info is not None:
            length = local_cache.stable_prefix(llm, tokens, prompt, self.persona)
            path = local_cache.state_path(self.info.model.path, tokens[:length])
            cached = local_cache.PrefixCache(path, length)
        self.prefix_cache = cached
        if not prefill(llm, tokens, stop, PREFILL_CHUNK, cached):
            return self._end("cancelled", len(tokens), 0)
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        produced = 0
        finish = "length"
        generator = llm.generate(
            tokens,
            top_k=40,
            top_p=0.95,
            min_p=0.05,
            temp=self.temperature,
            repeat_penalty=1.1,
        )
        try:
            for token in generator:
                if stop.is_set():
                    finish = "cancelled"
                    break
                if _is_end(llm, token):
                    finish = "stop"
                    break
                produced += 1
                text = decoder.decode(llm.detokenize([token]))
                if text:
                    put(("text", text))
                if produced >= self.max_tokens or llm.n_tokens >= self.context_window:
                    break
        finally:
            generator.close()
        tail = decoder.decode(b"", final=True)
        if tail:
            put(("text", tail))
        return self._end(finish, len(tokens), produced)

    def _end(self, finish: str, prompt: int, completion: int) -> StreamEnd:
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        return StreamEnd(finish_reason=finish, model=self.model, usage=usage)


def _is_end(llm: Any, token: int) -> bool:
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    return bool(llama_cpp.llama_vocab_is_eog(vocab, token)) or token == llm.token_eos()


def _join_all(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(timeout=30)


def _display_name(choice: str) -> str:
    """The model name known before loading (no import, no assembly)."""
    if choice and choice != "auto":
        return choice.rsplit("/", 1)[-1].removesuffix(".gguf")
    ready = local_models.installed()
    return ready[0].name if ready else "local"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__
