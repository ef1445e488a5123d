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

Two HTTP transports speak the same protocol code, chosen per provider with
`http=`: `httpx` (the default: `grizz ask` and the TUI) and `aiohttp` (the
server worker, which streams every reply of every user). On the 2-core
development machine one streamed request (a 9-event reply from a local fake)
costs ~1.0 ms of CPU with httpx and ~0.25 ms with bare aiohttp; through this
provider, ~1.0 ms against ~0.35 ms one at a time and ~0.94 ms against ~0.24 ms
with 8 in flight, as in a worker. The client keeps httpx because importing
aiohttp costs ~0.1 s more (figures in `http_aiohttp`); aiohttp is imported
only when selected. A
transport (`_Transport`) only sends a POST and sorts its own exceptions into
connect / timeout / broken / other; status handling, retries, SSE and JSON
parsing and every message are here, once.

Must not import: textual, rich, the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from grizz_core.errors import AuthError, GrizzError, ProviderError

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


Failure = Literal["connect", "timeout", "broken", "other"]
"""What went wrong on the wire: could not connect (retried before the first
token), no answer in time, the connection broke mid-reply, anything else."""


class _Response(Protocol):
    """What the provider reads of an HTTP response (an `httpx.Response` as is)."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]:
        """Case-insensitive `.get(name)`."""
        ...

    @property
    def text(self) -> str: ...

    async def aread(self) -> bytes: ...

    def json(self) -> Any:
        """The body as JSON; `ValueError` if it is not."""
        ...

    def aiter_text(self) -> AsyncIterator[str]:
        """The body, decoded, in the pieces it arrives in."""
        ...


class _Transport(Protocol):
    """The HTTP layer under `OpenAICompatProvider`."""

    errors: tuple[type[BaseException], ...]
    """What reading the rest of a body may raise (`_read_to_end` ignores it)."""

    def post(
        self, url: str, body: dict[str, Any]
    ) -> AbstractAsyncContextManager[_Response]:
        """POST `body` as JSON; the response with its body still to read."""
        ...

    def classify(self, exc: Exception) -> tuple[Failure, str] | None:
        """(kind, short reason) for this transport's own errors, else None."""
        ...

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
        self._transport: _Transport
        if http == "aiohttp":
            from grizz_core.providers.aiohttp_transport import AiohttpTransport

            self._transport = AiohttpTransport(
                base_url=self.base_url,
                headers=headers,
                timeout=timeout,
                max_connections=max_connections,
            )
        else:
            self._transport = _HttpxTransport(
                headers=headers, timeout=timeout, max_connections=max_connections
            )

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

    def _wire_error(self, kind: Failure, reason: str) -> ProviderError:
        """The one-sentence error for a transport failure."""
        if kind == "connect":
            return ProviderError(
                f"Could not reach {self.base_url} ({reason}); "
                "is the server running and base_url right?",
                retryable=True,
            )
        if kind == "timeout":
            return ProviderError(
                f"The provider at {self.host} did not answer within "
                f"{self.timeout:g} s.",
                retryable=True,
            )
        if kind == "broken":
            return ProviderError(
                f"The connection to {self.host} broke mid-reply ({reason}).",
                retryable=True,
            )
        return ProviderError(f"Request to {self.host} failed: {reason}.")

    def _drop_stream_options(self, response: _Response, stream: bool) -> bool:
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

    def _backoff(self, attempt: int, response: _Response | None) -> float:
        if response is not None:
            after = response.headers.get("retry-after")
            if after:
                try:
                    return min(max(float(after), 0.0), MAX_RETRY_AFTER)
                except ValueError:
                    pass
        delay = self.retry_delay * float(2 ** (attempt - 1))
        return min(delay, 8.0) * (0.75 + random.random() / 2)

    def _http_error(self, response: _Response) -> GrizzError:
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

    async def _parse_json(self, response: _Response) -> AsyncIterator[StreamEvent]:
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

    async def _parse_sse(self, response: _Response) -> AsyncIterator[StreamEvent]:
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
            await _read_to_end(payloads, self._transport.errors)


class _HttpxTransport:
    """httpx, sharded into pools of POOL_SHARD connections when large.

    The responses are httpx's own (no adapter on the hot path).
    """

    errors: tuple[type[BaseException], ...] = (TimeoutError, httpx.HTTPError)

    def __init__(
        self, *, headers: dict[str, str], timeout: float, max_connections: int
    ) -> None:
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
    async def post(self, url: str, body: dict[str, Any]) -> AsyncIterator[_Response]:
        """On the client with the fewest requests in flight."""
        index = min(range(len(self._clients)), key=self._busy.__getitem__)
        self._busy[index] += 1
        try:
            async with self._clients[index].stream("POST", url, json=body) as response:
                yield response
        finally:
            self._busy[index] -= 1

    @staticmethod
    def classify(exc: Exception) -> tuple[Failure, str] | None:
        if isinstance(
            exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout
        ):
            return "connect", _reason(exc)
        if isinstance(exc, httpx.TimeoutException):
            return "timeout", _reason(exc)
        if isinstance(
            exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError
        ):
            return "broken", _reason(exc)
        if isinstance(exc, httpx.HTTPError):
            return "other", _reason(exc)
        return None


POOL_SHARD = 8


def _pool_limits(max_connections: int) -> list[httpx.Limits]:
    """One `Limits` per client: httpx's defaults, or shards of POOL_SHARD."""
    if max_connections <= 0:
        return [httpx.Limits()]
    shards = -(-max_connections // POOL_SHARD)
    size = -(-max_connections // shards)
    return [httpx.Limits(max_connections=size, max_keepalive_connections=size)] * shards


async def _read_to_end(
    payloads: AsyncIterator[str], errors: tuple[type[BaseException], ...]
) -> None:
    """Read the (empty) rest of a body after `[DONE]`, ignoring `errors`.

    So the connection goes back to the pool: leaving a body unread makes httpx
    (and aiohttp) close the connection, and the next request pays a new TCP
    (and TLS) handshake. A server that keeps talking after `[DONE]` gets a
    second, then is cut off.
    """
    with contextlib.suppress(*errors):
        async with asyncio.timeout(1.0):
            async for _ in payloads:
                pass


async def _sse_payloads(response: _Response) -> AsyncIterator[str]:
    """The `data:` payloads of a server-sent-events body, one per event."""
    data: list[str] = []
    # Lines end only at \n, \r\n or \r, as server-sent events define them:
    # httpx's aiter_lines() also splits at U+2028, U+0085 and the like
    # (str.splitlines), which broke a JSON payload carrying one unescaped.
    async for line in _lines(response):
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


def _error_detail(response: _Response) -> str:
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


async def _lines(response: _Response) -> AsyncIterator[str]:
    """The body's lines, without their endings."""
    lines = LineSplitter()
    async for text in response.aiter_text():
        for line in lines.feed(text):
            yield line
    for line in lines.flush():
        yield line


class LineSplitter:
    """Text in pieces → lines, ended by \\n, \\r\\n or \\r (as SSE defines them).

    A piece ending in \\r ends its line at once; a \\n that starts the next
    piece is then the rest of that line ending, not an empty line.
    """

    __slots__ = ("_after_cr", "_rest")

    def __init__(self) -> None:
        self._rest = ""
        self._after_cr = False

    def feed(self, text: str) -> list[str]:
        if not text:
            return []
        if self._after_cr:
            self._after_cr = False
            if text[0] == "\n":
                text = text[1:]
        if "\r" in text:
            if text[-1] == "\r":
                self._after_cr = True
                text = text[:-1].replace("\r\n", "\n").replace("\r", "\n") + "\n"
            else:
                text = text.replace("\r\n", "\n").replace("\r", "\n")
        if "\n" not in text:
            self._rest += text
            return []
        lines = (self._rest + text).split("\n")
        self._rest = lines.pop()
        return lines

    def flush(self) -> list[str]:
        """The last line, if the text did not end with a line ending."""
        rest, self._rest = self._rest, ""
        return [rest] if rest else []
