"""The chat-completions client against the fake server over real HTTP."""

from __future__ import annotations

import socket

import pytest

from grizz_tui.core.provider import OpenAICompatProvider, StreamEnd, TextDelta
from grizz_tui.errors import AuthError, ProviderError
from tests.fakes.openai_server import (
    FakeOpenAI,
    Hang,
    HttpError,
    RawSSE,
    Text,
    ToolCalls,
)

MESSAGES = [{"role": "user", "content": "hi"}]


def make(fake: FakeOpenAI, **kw: object) -> OpenAICompatProvider:
    options: dict[str, object] = {"max_retries": 2, "retry_delay": 0.01, "timeout": 5.0}
    options.update(kw)
    return OpenAICompatProvider(
        base_url=fake.base_url,
        model="m",
        api_key="sk-x",
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


async def test_streams_text_and_usage(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Text("Hello, friend 🐻", chunk=3))
    text, end = await collect(make(fake_openai))
    assert text == "Hello, friend 🐻"
    assert end.finish_reason == "stop" and end.usage["total_tokens"] == 15
    body = fake_openai.requests[0]
    assert body["stream"] is True and body["model"] == "m"
    assert fake_openai.headers[0]["authorization"] == "Bearer sk-x"


async def test_tool_calls_split_across_chunks(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(
        ToolCalls(
            [("remember", {"content": "likes tea with honey"}), ("recall", {"q": 1})]
        )
    )
    _, end = await collect(make(fake_openai), tools=[{"type": "function"}])
    assert end.finish_reason == "tool_calls"
    assert [(c.name, c.arguments) for c in end.tool_calls] == [
        ("remember", '{"content": "likes tea with honey"}'),
        ("recall", '{"q": 1}'),
    ]


async def test_non_streaming_request(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Text("all at once"))
    text, end = await collect(make(fake_openai), stream=False)
    assert text == "all at once" and end.finish_reason == "stop"
    assert "stream" not in fake_openai.requests[0]


async def test_retries_5xx_then_succeeds(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(HttpError(503, "busy", times=2), Text("finally"))
    text, _ = await collect(make(fake_openai))
    assert text == "finally" and len(fake_openai.requests) == 3


async def test_rate_limit_gives_up_after_retries(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(HttpError(429, "slow down", {"Retry-After": "0"}, times=10))
    with pytest.raises(ProviderError, match=r"Rate limited .*429.*slow down"):
        await collect(make(fake_openai))
    assert len(fake_openai.requests) == 3


async def test_wrong_key_is_auth_error_without_retry(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(HttpError(401, "Incorrect API key provided"))
    with pytest.raises(AuthError, match="rejected the API key") as info:
        await collect(make(fake_openai))
    assert info.value.exit_code == 3 and len(fake_openai.requests) == 1


async def test_unknown_model_names_the_model(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(HttpError(404, "The model `m` does not exist"))
    with pytest.raises(ProviderError, match="Model 'm' was not found"):
        await collect(make(fake_openai))


async def test_unreachable_host_is_one_sentence() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = OpenAICompatProvider(
        base_url=f"http://127.0.0.1:{port}/v1",
        model="m",
        max_retries=1,
        retry_delay=0.01,
    )
    with pytest.raises(ProviderError, match="Could not reach") as info:
        await collect(provider)
    assert "\n" not in str(info.value)


async def test_timeout(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Hang(3))
    with pytest.raises(ProviderError, match=r"did not answer within 0\.5 s"):
        await collect(make(fake_openai, timeout=0.5))


@pytest.mark.parametrize(
    "lines",
    [
        ["data: {not json"],
        ["data: [1, 2]"],
        ['data: {"choices": [{"delta": "nope"}]}'],
    ],
)
async def test_malformed_stream(fake_openai: FakeOpenAI, lines: list[str]) -> None:
    fake_openai.enqueue(RawSSE(lines))
    with pytest.raises(ProviderError, match="malformed"):
        await collect(make(fake_openai))


async def test_stream_cut_off_before_finish(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Text("half a", finish="", usage=None, done=False))
    with pytest.raises(ProviderError, match="closed before the reply finished"):
        await collect(make(fake_openai))


async def test_error_object_mid_stream(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(RawSSE(['data: {"error": {"message": "overloaded"}}']))
    with pytest.raises(ProviderError, match="overloaded"):
        await collect(make(fake_openai))


async def test_server_rejecting_stream_options_is_retried_without(
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.enqueue(HttpError(400, "unknown field stream_options"), Text("ok"))
    text, _ = await collect(make(fake_openai))
    assert text == "ok"
    assert "stream_options" in fake_openai.requests[0]
    assert "stream_options" not in fake_openai.requests[1]


async def test_consecutive_streams_reuse_one_connection(
    fake_openai: FakeOpenAI,
) -> None:
    """The body is read to its end after [DONE], so the connection is kept alive
    (a server worker would otherwise open a new connection for every reply)."""
    fake_openai.enqueue(Text("one"), Text("two"), Text("three"))
    provider = make(fake_openai, max_connections=4)
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


def test_a_large_pool_is_split_into_small_ones() -> None:
    from grizz_tui.core.provider import POOL_SHARD, _pool_limits

    assert len(_pool_limits(0)) == 1  # grizz ask and the app: httpx's defaults
    shards = _pool_limits(64)
    assert len(shards) == 64 // POOL_SHARD
    assert sum(limits.max_connections or 0 for limits in shards) == 64
    assert all(
        (limits.max_connections or 0) <= POOL_SHARD for limits in _pool_limits(13)
    )
