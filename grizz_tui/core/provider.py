"""The chat-completions client: any OpenAI-compatible endpoint, streaming.

One implementation on `httpx` for OpenAI, Ollama, vLLM, llama.cpp server and
LM Studio. We measured the `openai` SDK's import at ~1.3 s on the 2-core
target machine against ~0.24 s for `httpx` (docs/benchmarks.md); on the
`grizz ask` path that alone would miss the "half of llm's wall time" target, so
the wire protocol (SSE chunks, tool-call deltas, usage) is spoken directly.
The test suite checks our fake server with the real `openai` client too.

Every failure becomes a `ProviderError` / `AuthError` with one sentence.
Retries with exponential backoff (honouring `Retry-After`) on 429, 5xx,
connection failures and timeouts, but only before the first token arrives.

Must not import: textual, rich, the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from grizz_tui.errors import AuthError, GrizzError, ProviderError

# httpx imports its command-line tool (`httpx._main`, which loads rich and
# pygments: ~75 ms) whenever click and rich are installed, as they are here.
# Marking the module absent makes httpx fall back to its stub, as it does
# without those packages. Nothing in Grizz uses the httpx CLI.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

import httpx  # noqa: E402

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
MAX_RETRY_AFTER = 30.0


@dataclass(frozen=True)
class TextDelta:
    """A piece of reply text."""

    text: str


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str
    """Raw JSON text of the arguments, as the model produced it."""


@dataclass(frozen=True)
class StreamEnd:
    """The last event of one completion."""

    finish_reason: str
    model: str = ""
    usage: dict[str, int] = field(default_factory=dict)
    tool_calls: tuple[ToolCall, ...] = ()


StreamEvent = TextDelta | StreamEnd


class Provider(Protocol):
    """What `ChatSession` needs from a model backend."""

    model: str
    supports_tools: bool

    def stream(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        tools: Sequence[dict[str, Any]] = (),
        stream: bool = True,
    ) -> AsyncIterator[StreamEvent]: ...

    async def aclose(self) -> None: ...


@dataclass
class _ToolAccumulator:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class OpenAICompatProvider:
    """Chat completions over HTTP against `base_url` (…/v1)."""

    supports_tools = True

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
    ) -> None:
        """`max_connections` > 0 keeps that many connections open and alive
        (a server worker with many replies at once); 0 keeps httpx's pool."""
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
        # httpcore's pool scans all its connections, twice over, on every
        # request and release (quadratic in 1.0.9): past ~10 connections the
        # scan costs more than the request. A provider sized for many
        # replies at once spreads them over clients of POOL_SHARD connections.
        shards = _pool_limits(max_connections)
        # one TLS context for all shards: each costs ~40 ms to create
        tls: dict[str, Any] = (
            {"verify": httpx.create_ssl_context()} if len(shards) > 1 else {}
        )
        self._clients = [
            httpx.AsyncClient(
                headers=headers,
                timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0)),
                limits=limits,
                **tls,
            )
            for limits in shards
        ]
        self._busy = [0] * len(self._clients)

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()

    @contextlib.asynccontextmanager
    async def _client(self) -> AsyncIterator[httpx.AsyncClient]:
        """The client with the fewest requests in flight, for one request."""
        index = min(range(len(self._clients)), key=self._busy.__getitem__)
        self._busy[index] += 1
        try:
            yield self._clients[index]
        finally:
            self._busy[index] -= 1

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
        if self.max_tokens > 0:
            body["max_tokens"] = self.max_tokens
        if self.temperature is not None:
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
        attempt = 0
        while True:
            body = self._body(messages, tools, stream)
            try:
                async with (
                    self._client() as client,
                    client.stream("POST", url, json=body) as response,
                ):
                    if response.status_code >= 400:
                        await response.aread()
                        error = self._http_error(response)
                        if self._drop_stream_options(response, stream):
                            continue
                        if (
                            getattr(error, "retryable", False)
                            and attempt < self.max_retries
                        ):
                            attempt += 1
                            await asyncio.sleep(self._backoff(attempt, response))
                            continue
                        raise error
                    parse = self._parse_sse if stream else self._parse_json
                    async for event in parse(response):
                        yield event
                    return
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                if attempt < self.max_retries:
                    attempt += 1
                    await asyncio.sleep(self._backoff(attempt, None))
                    continue
                raise ProviderError(
                    f"Could not reach {self.base_url} ({_reason(exc)}); "
                    "is the server running and base_url right?",
                    retryable=True,
                ) from None
            except httpx.TimeoutException:
                raise ProviderError(
                    f"The provider at {self.host} did not answer within "
                    f"{self.timeout:g} s.",
                    retryable=True,
                ) from None
            except (
                httpx.RemoteProtocolError,
                httpx.ReadError,
                httpx.WriteError,
            ) as exc:
                raise ProviderError(
                    f"The connection to {self.host} broke mid-reply ({_reason(exc)}).",
                    retryable=True,
                ) from None
            except httpx.HTTPError as exc:
                raise ProviderError(
                    f"Request to {self.host} failed: {_reason(exc)}."
                ) from None

    def _drop_stream_options(self, response: httpx.Response, stream: bool) -> bool:
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

    def _backoff(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None:
            after = response.headers.get("retry-after")
            if after:
                try:
                    return min(max(float(after), 0.0), MAX_RETRY_AFTER)
                except ValueError:
                    pass
        delay = self.retry_delay * float(2 ** (attempt - 1))
        return min(delay, 8.0) * (0.75 + random.random() / 2)

    def _http_error(self, response: httpx.Response) -> GrizzError:
        status = response.status_code
        detail = _error_detail(response)
        suffix = f": {detail}" if detail else ""
        if status in (401, 403):
            what = "rejected the API key" if status == 401 else "refused access"
            return AuthError(
                f"The provider at {self.host} {what} (HTTP {status}){suffix}. "
                "Set a valid key with `grizz key set` or OPENAI_API_KEY."
            )
        if status == 404:
            if "model" in detail.lower():
                return ProviderError(
                    f"Model '{self.model}' was not found at {self.host} "
                    f"(HTTP 404){suffix}.",
                    status=status,
                )
            return ProviderError(
                f"{self.base_url}/chat/completions was not found (HTTP 404); "
                "base_url usually ends in /v1.",
                status=status,
            )
        if status == 429:
            return ProviderError(
                f"Rate limited by {self.host} (HTTP 429) after {self.max_retries} "
                f"retries{suffix}.",
                status=status,
                retryable=True,
            )
        if status in RETRY_STATUSES:
            return ProviderError(
                f"The provider at {self.host} failed (HTTP {status}) after "
                f"{self.max_retries} retries{suffix}.",
                status=status,
                retryable=True,
            )
        return ProviderError(
            f"The provider at {self.host} rejected the request "
            f"(HTTP {status}){suffix}.",
            status=status,
        )

    def _malformed(self, what: str) -> ProviderError:
        return ProviderError(
            f"The provider at {self.host} sent a malformed reply ({what})."
        )

    async def _parse_json(self, response: httpx.Response) -> AsyncIterator[StreamEvent]:
        await response.aread()
        try:
            data = response.json()
            choice = data["choices"][0]
            message = choice.get("message") or {}
        except (ValueError, KeyError, IndexError, TypeError):
            raise self._malformed("not a chat completion") from None
        if message.get("content"):
            yield TextDelta(str(message["content"]))
        calls = tuple(
            ToolCall(
                id=str(c.get("id") or f"call_{i}"),
                name=str((c.get("function") or {}).get("name") or ""),
                arguments=str((c.get("function") or {}).get("arguments") or "{}"),
            )
            for i, c in enumerate(message.get("tool_calls") or [])
        )
        yield StreamEnd(
            finish_reason=str(choice.get("finish_reason") or "stop"),
            model=str(data.get("model") or self.model),
            usage=_usage(data.get("usage")),
            tool_calls=calls,
        )

    def _stream_chunk(self, payload: str) -> dict[str, Any]:
        """One SSE payload as a chunk object; a malformed one or an error raises."""
        try:
            chunk = json.loads(payload)
        except ValueError:
            raise self._malformed(f"bad JSON in stream: {payload[:60]!r}") from None
        if not isinstance(chunk, dict):
            raise self._malformed("stream chunk is not an object")
        if "error" in chunk:
            raise ProviderError(
                f"The provider at {self.host} failed mid-reply: "
                f"{_message_of(chunk['error'])}."
            )
        return chunk

    async def _parse_sse(self, response: httpx.Response) -> AsyncIterator[StreamEvent]:
        tools: dict[int, _ToolAccumulator] = {}
        finish = ""
        model = self.model
        usage: dict[str, int] = {}
        done = False
        payloads = _sse_payloads(response)
        async for payload in payloads:
            if payload == "[DONE]":
                done = True
                break
            chunk = self._stream_chunk(payload)
            model = str(chunk.get("model") or model)
            usage = _usage(chunk.get("usage")) or usage
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                if not isinstance(delta, dict):
                    raise self._malformed("delta is not an object")
                text = delta.get("content")
                if text:
                    yield TextDelta(str(text))
                for call in delta.get("tool_calls") or []:
                    _accumulate_tool_call(tools, call)
                finish = str(choice.get("finish_reason") or finish)
        if not done and not finish:
            raise ProviderError(
                f"The connection to {self.host} closed before the reply finished."
            )
        calls = tuple(
            ToolCall(
                id=acc.id or f"call_{i}",
                name=acc.name,
                arguments="".join(acc.arguments),
            )
            for i, acc in sorted(tools.items())
        )
        if calls and finish in ("", "stop"):
            finish = "tool_calls"
        yield StreamEnd(
            finish_reason=finish or "stop", model=model, usage=usage, tool_calls=calls
        )
        if done:
            await _read_to_end(payloads)


POOL_SHARD = 8


def _pool_limits(max_connections: int) -> list[httpx.Limits]:
    """One `Limits` per client: httpx's defaults, or shards of POOL_SHARD."""
    if max_connections <= 0:
        return [httpx.Limits()]
    shards = -(-max_connections // POOL_SHARD)
    size = -(-max_connections // shards)
    return [httpx.Limits(max_connections=size, max_keepalive_connections=size)] * shards


async def _read_to_end(payloads: AsyncIterator[str]) -> None:
    """Read the (empty) rest of a body after `[DONE]`.

    So the connection goes back to the pool: leaving a body unread makes httpx
    close the connection, and the next request pays a new TCP (and TLS)
    handshake. A server that keeps talking after `[DONE]` gets a second, then
    is cut off.
    """
    with contextlib.suppress(TimeoutError, httpx.HTTPError):
        async with asyncio.timeout(1.0):
            async for _ in payloads:
                pass


async def _sse_payloads(response: httpx.Response) -> AsyncIterator[str]:
    """The `data:` payloads of a server-sent-events body, one per event."""
    data: list[str] = []
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if name == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)


def _accumulate_tool_call(tools: dict[int, _ToolAccumulator], call: Any) -> None:
    if not isinstance(call, dict):
        return
    index = call.get("index")
    index = index if isinstance(index, int) else len(tools)
    acc = tools.setdefault(index, _ToolAccumulator())
    if call.get("id"):
        acc.id = str(call["id"])
    function = call.get("function") or {}
    if function.get("name"):
        acc.name += str(function["name"])
    if function.get("arguments"):
        acc.arguments.append(str(function["arguments"]))


def _usage(raw: Any) -> dict[str, int]:
    if not isinstance(raw, dict):
        return {}
    return {
        k: v for k, v in raw.items() if isinstance(v, int) and not isinstance(v, bool)
    }


def _message_of(error: Any) -> str:
    if isinstance(error, dict):
        error = error.get("message") or error.get("error") or json.dumps(error)
    return " ".join(str(error).split())[:200]


def _error_detail(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        text = response.text.strip()
        return " ".join(text.split())[:200] if text and "<" not in text[:1] else ""
    if isinstance(data, dict) and "error" in data:
        return _message_of(data["error"])
    if isinstance(data, dict) and "detail" in data:
        return _message_of(data["detail"])
    return ""


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if "Connection refused" in text or "ConnectError" in text:
        return "connection refused"
    return " ".join(text.split())[:160]
