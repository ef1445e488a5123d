"""Turning chat messages into prompt tokens for a local model, and feeding them.

`fit_prompt` renders the model's own chat template (from its GGUF metadata),
tokenizes it, and drops the oldest turns if the assembly's ~4-characters-per-
token estimate still overshot the model's window. `prefill` evaluates the
prompt in small chunks, reusing whatever prefix the model already holds from
the previous reply (the app keeps one model loaded, so a new turn only pays for
the new tokens), and returns early when asked to stop.

Runs in the generation thread. Must not import at module level: llama_cpp,
textual, the store.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from grizz_core.errors import ProviderError
from grizz_core.providers.local.cache import MIN_PREFIX, PrefixCache, restore, save

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""Fallback template for a user's GGUF file that carries none."""

_formatters: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
"""The compiled chat template of each loaded model."""


def plain(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Messages with text-only content (a local model cannot see images)."""
    result: list[dict[str, str]] = []
    for message in messages:
        role = str(message.get("role") or "user")
        if role not in ("system", "user", "assistant"):
            continue
        content = message.get("content")
        if isinstance(content, list):
            texts = [
                str(p.get("text") or "") for p in content if p.get("type") == "text"
            ]
            images = sum(1 for p in content if p.get("type") == "image_url")
            if images:
                texts.append(
                    f"[{images} image(s) attached; this local model cannot see them]"
                )
            content = "\n".join(t for t in texts if t)
        result.append({"role": role, "content": str(content or "")})
    return result


def _formatter(llm: Any) -> Any:
    found = _formatters.get(llm)
    if found is None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = llm.metadata.get("tokenizer.chat_template") or CHATML
        eos = _token_text(llm, llm.token_eos())
        bos = _token_text(llm, llm.token_bos())
        found = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
        _formatters[llm] = found
    return found


def _token_text(llm: Any, token: int) -> str:
    if token < 0:
        return ""
    piece: bytes = llm.detokenize([token], special=True)
    return piece.decode("utf-8", "replace")


def tokens_for(llm: Any, messages: list[dict[str, str]]) -> tuple[str, list[int]]:
    """The prompt text and tokens of `messages` under the model's chat template."""
    try:
        prompt = _formatter(llm)(messages=messages).prompt
    except Exception as exc:  # jinja2 errors from a model's template
        detail = " ".join(str(exc).split())[:160]
        message = f"The local model's chat template failed: {detail}."
        raise ProviderError(message) from None
    bos = _token_text(llm, llm.token_bos())
    add_bos = str(
        llm.metadata.get("tokenizer.ggml.add_bos_token", "false")
    ).lower() == "true" and not (bos and prompt.startswith(bos))
    return prompt, list(
        llm.tokenize(prompt.encode("utf-8"), add_bos=add_bos, special=True)
    )


def fit_prompt(
    llm: Any, messages: list[dict[str, Any]], budget: int
) -> tuple[str, list[int]]:
    """Prompt text and tokens within `budget`, dropping the oldest turns if needed.

    Raises:
        ProviderError: even the system prompt and the last message do not fit.
    """
    turns = plain(messages)
    while True:
        prompt, tokens = tokens_for(llm, turns)
        if len(tokens) <= budget:
            return prompt, tokens
        first = 1 if turns and turns[0]["role"] == "system" else 0
        if len(turns) - first <= 1:
            raise ProviderError(
                f"The message is too long for the local model ({len(tokens)} tokens; "
                f"it has room for {budget}); shorten it or raise local.n_ctx."
            )
        del turns[first]


def prefill(
    llm: Any,
    tokens: list[int],
    stop: threading.Event,
    chunk: int,
    cached: PrefixCache | None = None,
) -> bool:
    """Evaluate all but the last prompt token; False if `stop` was set first.

    With `cached`, a fresh model restores the persona prefix from its state
    file, or evaluates it and saves the file (local_cache.py). The
    last token is left for `Llama.generate`, which evaluates it and samples
    from fresh logits.
    """
    target = len(tokens) - 1
    if (
        cached is not None
        and llm.n_tokens == 0
        and MIN_PREFIX <= cached.length <= target
    ):
        prefix = tokens[: cached.length]
        if restore(llm, cached.path, prefix):
            cached.outcome = "restored"
        else:
            if not _eval(llm, tokens, 0, cached.length, stop, chunk):
                return False
            save(llm, cached.path, prefix)
            cached.outcome = "saved"
    keep = 0
    limit = min(llm.n_tokens, target)
    held = llm.input_ids
    while keep < limit and int(held[keep]) == tokens[keep]:
        keep += 1
    llm.n_tokens = keep  # `eval` drops the KV cells past n_tokens
    return _eval(llm, tokens, keep, target, stop, chunk)


def _eval(
    llm: Any, tokens: list[int], start: int, end: int, stop: threading.Event, chunk: int
) -> bool:
    for at in range(start, end, chunk):
        if stop.is_set():
            return False
        llm.eval(tokens[at : min(end, at + chunk)])
    return not stop.is_set()
