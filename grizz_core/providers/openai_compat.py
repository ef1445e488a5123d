"""The chat-completions client: any OpenAI-compatible endpoint, streaming.

One implementation for OpenAI, Ollama, vLLM, llama.cpp server and LM Studio.
We measured the `openai` SDK's import at ~1.3 s on the 2-core target machine
against ~0.24 s for `httpx` (docs/benchmarks.md); on the `grizz ask` path
that alone would miss the "half of llm's wall time" target, so the wire
protocol (SSE chunks, tool-call deltas, usage) is spoken directly. The test
suite checks our fake server with the real `openai` client too.

Every failure becomes a `ProviderError` / `AuthError` with one sentence
(`providers.errors`). Retries with exponential backoff (honouring
`Retry-After`) on 429, 5xx, connection failures and timeouts, but only before
the first token arrives. What a model accepts in the request (`max_tokens` or
`max_completion_tokens`, a temperature) comes from `providers.capabilities`.

Two HTTP transports speak the same protocol code, chosen per provider with
`http=`: `httpx` (the default: `grizz ask` and the TUI) and `aiohttp` (the
server worker, which streams every reply of every user). On the 2-core
development machine one streamed request (a 9-event reply from a local fake)
costs ~1.0 ms of CPU with httpx and ~0.25 ms with bare aiohttp; through this
provider, ~1.0 ms against ~0.35 ms one at a time and ~0.94 ms against ~0.24 ms
with 8 in flight, as in a worker. The client keeps httpx because importing
aiohttp costs ~0.1 s more (figures in `aiohttp_transport`); aiohttp is
imported only when selected. A transport (`transport.Transport`) only sends a
POST and sorts its own exceptions into connect / timeout / broken / other;
status handling, retries, SSE and JSON parsing and every message are above it,
once.

Must not import: textual, rich, the store.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import urlsplit

from grizz_core.errors import GrizzError, ProviderError
from grizz_core.providers import errors
from grizz_core.providers.base import Progress, StreamEvent
from grizz_core.providers.capabilities import capabilities_of
from grizz_core.providers.completions import parse_completion, parse_stream
from grizz_core.providers.httpx_transport import HttpxTransport
from grizz_core.providers.transport import Failure, Response, Transport

MAX_RETRY_AFTER = 30.0
"""The longest `Retry-After` honoured, in seconds."""


class OpenAICompatProvider:
    """Chat completions over HTTP against `base_url` (…/v1)."""

    supports_tools = True
    prompt_budget: int | None = None
    """The settings' `context_tokens` decide alone."""
    persona: str | None = None
    """The companion's default persona."""
    needs_loading = False
    """The endpoint holds the model: nothing to load."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        retry_delay: float = 0.5,
        max_tokens: int = 0,
        temperature: float | None = None,
        max_connections: int = 0,
        http: str = "httpx",
    ) -> None:
        """`max_connections` > 0 keeps that many connections open and alive
        (a server worker with many replies at once); 0 keeps the transport's
        default pool. `http` is the transport: "httpx" or "aiohttp"."""
        if http not in ("httpx", "aiohttp"):
            raise ValueError(f"http must be 'httpx' or 'aiohttp', not {http!r}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.host = urlsplit(self.base_url).netloc or self.base_url
        self.timeout = timeout
        self.max_retries = max(0, max_retries)
        self.retry_delay = retry_delay
        self.max_tokens = max_tokens
        self.temperature = temperature
        self._send_stream_options = True
        headers = {"User-Agent": "grizz"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._transport: Transport
        if http == "aiohttp":
            from grizz_core.providers.aiohttp_transport import AiohttpTransport

            self._transport = AiohttpTransport(
                base_url=self.base_url,
                headers=headers,
                timeout=timeout,
                max_connections=max_connections,
            )
        else:
            self._transport = HttpxTransport(
                headers=headers, timeout=timeout, max_connections=max_connections
            )

    async def load(self, progress: Progress | None = None) -> None:
        """Nothing to load (`Provider.load`)."""

    async def aclose(self) -> None:
        await self._transport.aclose()

    def _body(
        self,
        messages: Sequence[dict[str, Any]],
        tools: Sequence[dict[str, Any]],
        stream: bool,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": list(messages)}
        if stream:
            body["stream"] = True
            if self._send_stream_options:
                body["stream_options"] = {"include_usage": True}
        if tools:
            body["tools"] = list(tools)
        accepts = capabilities_of(self.model)
        if self.max_tokens > 0:
            body[accepts.tokens_field] = self.max_tokens
        if self.temperature is not None and accepts.temperature:
            body["temperature"] = self.temperature
        return body

    async def stream(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        tools: Sequence[dict[str, Any]] = (),
        stream: bool = True,
    ) -> AsyncIterator[StreamEvent]:
        """Send one completion request and yield its events.

        Raises:
            ProviderError: network failure, HTTP error or a malformed stream.
            AuthError: the key was rejected (401/403).
        """
        url = f"{self.base_url}/chat/completions"
        transport = self._transport
        attempt = 0
        while True:
            body = self._body(messages, tools, stream)
            try:
                async with transport.post(url, body) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        error = self._http_error(response)
                        if self._drop_stream_options(response, stream):
                            continue
                        if (
                            isinstance(error, ProviderError)
                            and error.retryable
                            and attempt < self.max_retries
                        ):
                            attempt += 1
                            await asyncio.sleep(self._backoff(attempt, response))
                            continue
                        raise error
                    async for event in self._events(response, stream):
                        yield event
                    return
            except Exception as exc:
                failure = transport.classify(exc)
                if failure is None:
                    raise
                kind, reason = failure
                if kind == "connect" and attempt < self.max_retries:
                    attempt += 1
                    await asyncio.sleep(self._backoff(attempt, None))
                    continue
                raise self._wire_error(kind, reason) from None

    async def models(self) -> list[str]:
        """The model ids the endpoint lists (`GET …/models`), sorted.

        [] when it offers no list (an error status, or a body that is not one).

        Raises:
            GrizzError: the endpoint is unreachable, or refuses the key (401/403).
        """
        try:
            async with self._transport.get(f"{self.base_url}/models") as response:
                await response.aread()
                if response.status_code in (401, 403):
                    raise self._http_error(response)
                if response.status_code != 200:
                    return []
                try:
                    body = response.json()
                except ValueError:
                    return []
        except GrizzError:
            raise
        except Exception as exc:
            failure = self._transport.classify(exc)
            if failure is None:
                raise
            raise self._wire_error(*failure) from None
        return model_ids(body)

    def _wire_error(self, kind: Failure, reason: str) -> ProviderError:
        """The one-sentence error for a transport failure."""
        return errors.wire_error(
            kind, reason, base_url=self.base_url, host=self.host, timeout=self.timeout
        )

    def _drop_stream_options(self, response: Response, stream: bool) -> bool:
        """Some servers reject `stream_options`; retry once without it."""
        if (
            stream
            and self._send_stream_options
            and response.status_code in (400, 422)
            and "stream_options" in response.text
        ):
            self._send_stream_options = False
            return True
        return False

    def _backoff(self, attempt: int, response: Response | None) -> float:
        if response is not None:
            after = response.headers.get("retry-after")
            if after:
                try:
                    return min(max(float(after), 0.0), MAX_RETRY_AFTER)
                except ValueError:
                    pass
        delay = self.retry_delay * float(2 ** (attempt - 1))
        return min(delay, 8.0) * (0.75 + random.random() / 2)

    def _events(self, response: Response, stream: bool) -> AsyncIterator[StreamEvent]:
        if stream:
            return parse_stream(
                response,
                host=self.host,
                model=self.model,
                errors=self._transport.errors,
            )
        return parse_completion(response, host=self.host, model=self.model)

    def _http_error(self, response: Response) -> GrizzError:
        return errors.http_error(
            response,
            base_url=self.base_url,
            host=self.host,
            model=self.model,
            max_retries=self.max_retries,
        )


def model_ids(body: object) -> list[str]:
    """The sorted, distinct `id`s of an OpenAI `/models` list body ([] if none)."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        return []
    return sorted(
        {m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)}
    )
