"""The chat-completions client against the fake server over real HTTP.

Every behaviour is checked on both transports (httpx: the client; aiohttp: the
server worker).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from grizz_core.errors import AuthError, ProviderError
from grizz_core.providers.base import StreamEnd, TextDelta
from grizz_core.providers.openai_compat import OpenAICompatProvider
from tests.fakes.openai_server import (
    FakeOpenAI,
    Hang,
    HttpError,
    RawSSE,
    Text,
    ToolCalls,
)

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(params=["httpx", "aiohttp"])
def http(request: pytest.FixtureRequest) -> str:
    """Every behaviour is checked on both transports."""
    return str(request.param)


def make(fake: FakeOpenAI, http: str, **kw: object) -> OpenAICompatProvider:
    options: dict[str, object] = {
        "model": "m",
        "max_retries": 2,
        "retry_delay": 0.01,
        "timeout": 5.0,
    }
    options.update(kw)
    return OpenAICompatProvider(
        base_url=fake.base_url,
        api_key="sk-x",
        http=http,
        **options,  # type: ignore[arg-type]
    )


async def collect(
    provider: OpenAICompatProvider, **kw: object
) -> tuple[str, StreamEnd]:
    text, end = [], None
    try:
        async for event in provider.stream(MESSAGES, **kw):  # type: ignore[arg-type]
            if isinstance(event, TextDelta):
                text.append(event.text)
            else:
                end = event
    finally:
        await provider.aclose()
    assert end is not None
    return "".join(text), end


async def test_streams_text_and_usage(fake_openai: FakeOpenAI, http: str) -> None:
    fake_openai.enqueue(Text("Hello, friend 🐻", chunk=3))
    text, end = await collect(make(fake_openai, http))
    assert text == "Hello, friend 🐻"
    assert end.finish_reason == "stop" and end.usage["total_tokens"] == 15
    body = fake_openai.requests[0]
    assert body["stream"] is True and body["model"] == "m"
    assert fake_openai.headers[0]["authorization"] == "Bearer sk-x"


async def test_tool_calls_split_across_chunks(
    fake_openai: FakeOpenAI, http: str
) -> None:
    fake_openai.enqueue(
        ToolCalls(
            [("remember", {"content": "likes tea with honey"}), ("recall", {"q": 1})]
        )
    )
    _, end = await collect(make(fake_openai, http), tools=[{"type": "function"}])
    assert end.finish_reason == "tool_calls"
    assert [(c.name, c.arguments) for c in end.tool_calls] == [
        ("remember", '{"content": "likes tea with honey"}'),
        ("recall", '{"q": 1}'),
    ]


async def test_non_streaming_request(fake_openai: FakeOpenAI, http: str) -> None:
    fake_openai.enqueue(Text("all at once"))
    text, end = await collect(make(fake_openai, http), stream=False)
    assert text == "all at once" and end.finish_reason == "stop"
    assert "stream" not in fake_openai.requests[0]


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("model", ["o1", "o3-mini", "o4-mini", "gpt-5", "GPT-5-mini"])
async def test_reasoning_model_gets_max_completion_tokens_and_no_temperature(
    fake_openai: FakeOpenAI, http: str, model: str, stream: bool
) -> None:
    fake_openai.enqueue(Text("thought it through"))
    provider = make(fake_openai, http, model=model, max_tokens=64, temperature=0.2)
    text, _ = await collect(provider, stream=stream)
    assert text == "thought it through"
    body = fake_openai.requests[0]
    assert body["model"] == model and body["max_completion_tokens"] == 64
    assert "max_tokens" not in body and "temperature" not in body


@pytest.mark.parametrize("stream", [True, False])
async def test_other_models_keep_max_tokens_and_temperature(
    fake_openai: FakeOpenAI, http: str, stream: bool
) -> None:
    fake_openai.enqueue(Text("as ever"))
    provider = make(
        fake_openai, http, model="gpt-4o-mini", max_tokens=64, temperature=0.2
    )
    await collect(provider, stream=stream)
    body = fake_openai.requests[0]
    assert body["max_tokens"] == 64 and body["temperature"] == 0.2
    assert "max_completion_tokens" not in body
    expected = {"model", "messages", "max_tokens", "temperature"}
    if stream:
        expected |= {"stream", "stream_options"}
    assert set(body) == expected


async def test_retries_5xx_then_succeeds(fake_openai: FakeOpenAI, http: str) -> None:
    fake_openai.enqueue(HttpError(503, "busy", times=2), Text("finally"))
    text, _ = await collect(make(fake_openai, http))
    assert text == "finally" and len(fake_openai.requests) == 3


async def test_rate_limit_gives_up_after_retries(
    fake_openai: FakeOpenAI, http: str
) -> None:
    fake_openai.enqueue(HttpError(429, "slow down", {"Retry-After": "0"}, times=10))
    with pytest.raises(ProviderError, match=r"Rate limited .*429.*slow down"):
        await collect(make(fake_openai, http))
    assert len(fake_openai.requests) == 3


async def test_wrong_key_is_auth_error_without_retry(
    fake_openai: FakeOpenAI, http: str
) -> None:
    fake_openai.enqueue(HttpError(401, "Incorrect API key provided"))
    with pytest.raises(AuthError, match="rejected the API key") as info:
        await collect(make(fake_openai, http))
    assert info.value.exit_code == 3 and len(fake_openai.requests) == 1


async def test_unknown_model_names_the_model(
    fake_openai: FakeOpenAI, http: str
) -> None:
    fake_openai.enqueue(HttpError(404, "The model `m` does not exist"))
    with pytest.raises(ProviderError, match="Model 'm' was not found"):
        await collect(make(fake_openai, http))


async def test_unreachable_host_is_one_sentence(http: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = OpenAICompatProvider(
        base_url=f"http://127.0.0.1:{port}/v1",
        model="m",
        max_retries=1,
        retry_delay=0.01,
        http=http,
    )
    with pytest.raises(ProviderError, match="Could not reach") as info:
        await collect(provider)
    assert "\n" not in str(info.value)


async def test_timeout(fake_openai: FakeOpenAI, http: str) -> None:
    fake_openai.enqueue(Hang(3))
    with pytest.raises(ProviderError, match=r"did not answer within 0\.5 s"):
        await collect(make(fake_openai, http, timeout=0.5))


@pytest.mark.parametrize(
    "lines",
    [
        ["data: {not json"],
        ["data: [1, 2]"],
        ['data: {"choices": [{"delta": "nope"}]}'],
    ],
)
async def test_malformed_stream(
    fake_openai: FakeOpenAI, http: str, lines: list[str]
) -> None:
    fake_openai.enqueue(RawSSE(lines))
    with pytest.raises(ProviderError, match="malformed"):
        await collect(make(fake_openai, http))


async def test_stream_cut_off_before_finish(fake_openai: FakeOpenAI, http: str) -> None:
    fake_openai.enqueue(Text("half a", finish="", usage=None, done=False))
    with pytest.raises(ProviderError, match="closed before the reply finished"):
        await collect(make(fake_openai, http))


async def test_error_object_mid_stream(fake_openai: FakeOpenAI, http: str) -> None:
    fake_openai.enqueue(RawSSE(['data: {"error": {"message": "overloaded"}}']))
    with pytest.raises(ProviderError, match="overloaded"):
        await collect(make(fake_openai, http))


async def test_server_rejecting_stream_options_is_retried_without(
    fake_openai: FakeOpenAI, http: str
) -> None:
    fake_openai.enqueue(HttpError(400, "unknown field stream_options"), Text("ok"))
    text, _ = await collect(make(fake_openai, http))
    assert text == "ok"
    assert "stream_options" in fake_openai.requests[0]
    assert "stream_options" not in fake_openai.requests[1]


async def test_consecutive_streams_reuse_one_connection(
    fake_openai: FakeOpenAI, http: str
) -> None:
    """The body is read to its end after [DONE], so the connection is kept alive
    (a server worker would otherwise open a new connection for every reply)."""
    fake_openai.enqueue(Text("one"), Text("two"), Text("three"))
    provider = make(fake_openai, http, max_connections=4)
    try:
        for expected in ("one", "two", "three"):
            text = "".join(
                [
                    e.text
                    async for e in provider.stream(MESSAGES)
                    if isinstance(e, TextDelta)
                ]
            )
            assert text == expected
    finally:
        await provider.aclose()
    assert len(fake_openai.peers) == 3 and len(set(fake_openai.peers)) == 1


async def test_crlf_and_cr_line_endings(fake_openai: FakeOpenAI, http: str) -> None:
    """SSE lines end in \\n, \\r\\n or \\r; an event's data lines are joined."""
    fake_openai.enqueue(
        RawSSE(
            [
                'data: {"choices": [{"delta": {"content": "one "}}]}\r\n\r',
                'data: {"choices": \rdata: [{"delta": {"content": "two"}, '
                '"finish_reason": "stop"}]}\r',
                "data: [DONE]\r\n",
            ]
        )
    )
    text, end = await collect(make(fake_openai, http))
    assert text == "one two" and end.finish_reason == "stop"


# Pieces the raw server below sends as separate network writes: a line split
# mid-JSON, an emoji split mid-UTF-8, "\r\n" split between "\r" and "\n" (twice:
# counted as two line endings, the second would end the two-line event early)
# and bare "\r" endings.
SPLIT_SSE = [
    b'data: {"choices": [{"delta": {"content": "Hel',
    b"lo \xf0\x9f",
    b'\x90\xbb"}}]}\r',
    b'\n\r\ndata: {"choices": \r',
    b'\ndata: [{"delta": {"content": "!"}, "finish_reason": "stop"}]}\r',
    b"\r",
    b"data: [DONE]\r\n\r\n",
]


@contextlib.asynccontextmanager
async def raw_sse_server(pieces: list[bytes]) -> AsyncIterator[str]:
    """A server that answers one POST with `pieces`, one HTTP chunk (and one
    network write) each, 20 ms apart; yields its base URL."""
    handlers: list[asyncio.Task[None]] = []

    async def answer(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.lower().split(b"\r\n")
            if line.startswith(b"content-length:")
        )
        await reader.readexactly(length)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        for piece in pieces:
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0.02)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        await reader.read()  # until the client closes its kept-alive connection
        writer.close()
        await writer.wait_closed()

    def start(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(asyncio.ensure_future(answer(reader, writer)))

    server = await asyncio.start_server(start, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
    finally:
        server.close()
        await server.wait_closed()
        await asyncio.wait_for(asyncio.gather(*handlers), 5)


async def test_sse_split_across_network_reads(http: str) -> None:
    async with raw_sse_server(SPLIT_SSE) as base_url:
        provider = OpenAICompatProvider(base_url=base_url, model="m", http=http)
        text, end = await collect(provider)
    assert text == "Hello 🐻!" and end.finish_reason == "stop"


def test_line_splitter_at_every_split_point() -> None:
    from grizz_core.providers.sse import LineSplitter

    text = "a\r\nb\rc\n\r\n\rd\r\re"
    expected = ["a", "b", "c", "", "", "d", "", "e"]
    for i in range(len(text) + 1):
        for j in range(i, len(text) + 1):
            lines = LineSplitter()
            got = [*lines.feed(text[:i]), *lines.feed(text[i:j])]
            got += [*lines.feed(text[j:]), *lines.flush()]
            assert got == expected, (i, j)


async def test_unicode_line_separator_inside_a_payload(
    fake_openai: FakeOpenAI, http: str, request: pytest.FixtureRequest
) -> None:
    """SSE lines end only at \\n, \\r\\n and \\r: a raw U+2028 in a JSON string
    is text (httpx's own line decoder would split there: str.splitlines)."""
    fake_openai.enqueue(
        RawSSE(
            [
                'data: {"choices": [{"delta": {"content": "a\u2028b"}, '
                '"finish_reason": "stop"}]}',
                "data: [DONE]",
            ]
        )
    )
    text, _ = await collect(make(fake_openai, http))
    assert text == "a\u2028b"


def test_unknown_transport_is_refused() -> None:
    with pytest.raises(ValueError, match="httpx"):
        OpenAICompatProvider(base_url="http://127.0.0.1:9/v1", model="m", http="curl")


def test_the_client_does_not_import_aiohttp() -> None:
    """grizz ask and the TUI pay for every import: aiohttp only when chosen
    (and choosing it, outside an event loop, warns about nothing)."""
    probe = (
        "import sys\n"
        "from grizz_tui.factory import make_provider\n"
        "from grizz_core.providers.openai_compat import OpenAICompatProvider\n"
        "OpenAICompatProvider(base_url='http://127.0.0.1:9/v1', model='m')\n"
        "assert 'aiohttp' not in sys.modules, 'aiohttp was imported'\n"
        "OpenAICompatProvider(base_url='http://127.0.0.1:9/v1', model='m',"
        " http='aiohttp')\n"
        "assert 'aiohttp' in sys.modules\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", probe],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr


def test_a_large_pool_is_split_into_small_ones() -> None:
    from grizz_core.providers.httpx_transport import POOL_SHARD, pool_limits

    assert len(pool_limits(0)) == 1  # grizz ask and the app: httpx's defaults
    shards = pool_limits(64)
    assert len(shards) == 64 // POOL_SHARD
    assert sum(limits.max_connections or 0 for limits in shards) == 64
    assert all(
        (limits.max_connections or 0) <= POOL_SHARD for limits in pool_limits(13)
    )
