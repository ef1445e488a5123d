"""LocalProvider in-process: streaming, cancellation, quiet loading, budgets."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from grizz_core import days
from grizz_core.companion.session import ReplyFinished
from grizz_core.domain import Status
from grizz_core.errors import ProviderError
from grizz_core.providers.base import StreamEnd, StreamEvent, TextDelta
from grizz_core.providers.local.provider import COMPACT_PERSONA, LocalProvider
from grizz_tui.config import load_settings
from grizz_tui.factory import make_session
from grizz_tui.store import conversations as conv
from grizz_tui.store import memory as mem
from grizz_tui.store.db import Database
from grizz_tui.store.local import LocalChatStore

pytestmark = pytest.mark.local

LONG = "bear " * 900
HI = [{"role": "system", "content": COMPACT_PERSONA}, {"role": "user", "content": "hi"}]


def provider(**kw: Any) -> LocalProvider:
    kw.setdefault("n_ctx", 1024)
    kw.setdefault("max_tokens", 40)
    return LocalProvider(**kw)


async def test_stream_yields_text_then_one_end_with_usage(local_env: Path) -> None:
    local = provider()
    try:
        events = [event async for event in local.stream(HI)]
    finally:
        await local.aclose()
    *texts, end = events
    assert texts and all(isinstance(t, TextDelta) for t in texts)
    assert "".join(t.text for t in texts).strip()
    assert isinstance(end, StreamEnd) and end.finish_reason in ("stop", "length")
    assert end.model == "qwen2.5-coder-0.5b" and end.tool_calls == ()
    assert end.usage["completion_tokens"] <= 40 and end.usage["prompt_tokens"] > 20
    assert local.supports_tools is False


async def test_no_stream_gives_one_delta(local_env: Path) -> None:
    local = provider(max_tokens=12)
    try:
        events = [event async for event in local.stream(HI, stream=False)]
    finally:
        await local.aclose()
    assert [type(e) for e in events] == [TextDelta, StreamEnd]


async def test_loading_writes_nothing_to_the_terminal(
    local_env: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    stdout, stderr = sys.stdout, sys.stderr
    local = provider()
    try:
        info = await local.load()
        [event async for event in local.stream(HI)]
    finally:
        await local.aclose()
    assert capfd.readouterr() == ("", "")  # fd level: llama.cpp's C logging too
    assert (sys.stdout, sys.stderr) == (stdout, stderr)
    assert info.rss_bytes > 0 and info.estimate_bytes > info.model.size
    assert dict(info.describe())["licence"].startswith("Apache-2.0")


async def test_load_does_not_block_the_event_loop(local_env: Path) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    local = provider()
    try:
        await local.load()
    finally:
        task.cancel()
        await local.aclose()
    assert ticks > 0


async def test_cancelling_keeps_the_partial_reply_and_stops_the_thread(
    local_env: Path, db: Database
) -> None:
    local = provider(max_tokens=400)
    session = make_session(load_settings(), LocalChatStore(db), local)
    seen = asyncio.Event()

    async def consume() -> None:
        async for event in session.send("Tell me a long story about a bear."):
            if isinstance(event, TextDelta):
                seen.set()

    task = asyncio.create_task(consume())
    await seen.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await local.aclose()
    assert not [t for t in threading.enumerate() if t.name == "grizz-local"]
    _, reply = conv.messages_of(db, conv.day_conversation_id(days.today("")))
    assert reply.status == Status.INTERRUPTED and reply.content.strip()


class Recording:
    """Wraps a provider and keeps the messages each request sent."""

    def __init__(self, inner: LocalProvider) -> None:
        self.inner = inner
        self.model = inner.model
        self.supports_tools = inner.supports_tools
        self.prompt_budget = inner.prompt_budget
        self.persona = inner.persona
        self.sent: list[Sequence[dict[str, Any]]] = []

    def stream(
        self, messages: Sequence[dict[str, Any]], **kw: Any
    ) -> AsyncIterator[StreamEvent]:
        self.sent.append(messages)
        return self.inner.stream(messages, **kw)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_memories_reach_the_prompt_without_tools(
    local_env: Path, db: Database
) -> None:
    mem.add_memory(db, "The user's name is Sam and Sam loves hiking.", title="name")
    recording = Recording(provider(max_tokens=4))
    session = make_session(load_settings(), LocalChatStore(db), recording)  # type: ignore[arg-type]
    try:
        events = [e async for e in session.send("What is my name, and what do I love?")]
    finally:
        await recording.aclose()
    assert session.persona == COMPACT_PERSONA and session.tools
    assert session.context_tokens == 1024 - 4
    system = recording.sent[0][0]["content"]
    assert "Sam loves hiking" in system and "remember" in system.lower()
    finished = events[-1]
    assert isinstance(finished, ReplyFinished)
    assert finished.message.status == Status.COMPLETE
    assert "tools" not in finished.message.metadata


async def test_a_long_day_is_trimmed_to_the_window(local_env: Path) -> None:
    from grizz_core.providers.local.prompt import fit_prompt

    local = provider(max_tokens=8)
    await local.load()
    day = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": "honey " * 60}
        for i in range(40)
    ]
    messages = [HI[0], *day, {"role": "user", "content": "the question"}]
    try:
        prompt, tokens = fit_prompt(local._llm, messages, 300)
    finally:
        await local.aclose()
    assert len(tokens) <= 300
    assert prompt.count("honey") < 40 * 60 and "the question" in prompt
    assert COMPACT_PERSONA[:40] in prompt


async def test_a_message_too_long_for_the_window_is_one_clear_error(
    local_env: Path,
) -> None:
    local = provider(n_ctx=256, max_tokens=8)
    try:
        with pytest.raises(ProviderError, match="too long for the local model"):
            [e async for e in local.stream([{"role": "user", "content": LONG}])]
    finally:
        await local.aclose()


async def test_persona_prefix_state_is_saved_restored_and_rebuilt(
    local_env: Path,
) -> None:
    outcomes = []
    for damage in (False, True, False):
        local = provider(max_tokens=4)
        try:
            events = [e async for e in local.stream(HI)]
            assert local.prefix_cache is not None and isinstance(events[-1], StreamEnd)
            outcomes.append(local.prefix_cache.outcome)
            state = local.prefix_cache.path
            # A warm model reuses what it holds instead of the file.
            [e async for e in local.stream(HI)]
            assert local.prefix_cache.outcome == "unused"
        finally:
            await local.aclose()
        if damage:
            state.write_bytes(b"not a llama state")
    # (The first may restore a state an earlier test saved in the shared dir.)
    assert outcomes[0] in ("saved", "restored")
    assert outcomes[1:] == ["restored", "saved"]
    assert state.stat().st_size > 1000


async def test_an_older_prefix_state_of_the_model_is_pruned(local_env: Path) -> None:
    local = provider(max_tokens=4)
    try:
        [e async for e in local.stream(HI)]
        assert local.prefix_cache is not None
        current = local.prefix_cache.path
        stale = current.with_name(current.name[:-12] + "0000000.state")
        stale.write_bytes(b"an older persona's state")
        await local.aclose()
        local = provider(max_tokens=4)
        local.persona = "You are Grizz, a bear who answers in one short line. " * 4
        other = [{"role": "system", "content": local.persona}, HI[1]]
        [e async for e in local.stream(other)]
    finally:
        await local.aclose()
    assert local.prefix_cache is not None and local.prefix_cache.outcome == "saved"
    assert not stale.exists() and local.prefix_cache.path.exists()
