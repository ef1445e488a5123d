"""ChatSession: nothing lost, replies end honestly, tools loop, context assembled."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from grizz_core import days
from grizz_core.companion.session import (
    ChatSession,
    ReplyFinished,
    ToolUsed,
    UserMessageStored,
)
from grizz_core.domain import Role, Status
from grizz_core.errors import ProviderError
from grizz_core.providers.base import TextDelta
from grizz_core.providers.openai_compat import OpenAICompatProvider
from grizz_tui.store import conversations as conv
from grizz_tui.store import memory as mem
from grizz_tui.store.db import Database
from grizz_tui.store.local import LocalChatStore
from tests.fakes.openai_server import FakeOpenAI, HttpError, Text, ToolCalls


def session_for(db: Database, fake: FakeOpenAI, **kw: object) -> ChatSession:
    provider = OpenAICompatProvider(
        base_url=fake.base_url, model="fake-model", max_retries=0, timeout=5
    )
    return ChatSession(LocalChatStore(db), provider, tz="UTC", **kw)  # type: ignore[arg-type]


async def run(session: ChatSession, text: str) -> list[object]:
    try:
        return [event async for event in session.send(text)]
    finally:
        await session.provider.aclose()


def today_messages(db: Database) -> list[conv.Message]:
    return conv.messages_of(db, conv.day_conversation_id(days.today("UTC")))


async def test_reply_is_stored_complete(db: Database, fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Text("Hey there! 🐻"))
    events = await run(session_for(db, fake_openai), "hello")
    assert isinstance(events[0], UserMessageStored)
    finished = events[-1]
    assert isinstance(finished, ReplyFinished)
    assert finished.message.content == "Hey there! 🐻"
    user, reply = today_messages(db)
    assert (user.role, user.content, user.status) == (
        Role.USER,
        "hello",
        Status.COMPLETE,
    )
    assert (reply.content, reply.status) == ("Hey there! 🐻", Status.COMPLETE)
    assert reply.metadata["reply_to"] == user.id
    assert reply.metadata["usage"]["total_tokens"] == 15


async def test_user_message_is_stored_before_the_request(
    db: Database, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(HttpError(500, "boom"))
    with pytest.raises(ProviderError):
        await run(session_for(db, fake_openai), "please keep me")
    user, reply = today_messages(db)
    assert user.content == "please keep me" and user.status == Status.COMPLETE
    assert reply.status == Status.ERROR and "boom" in reply.metadata["error"]


async def test_cancel_mid_stream_keeps_partial_as_interrupted(
    db: Database, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(Text("one two three four five six seven", chunk=4, delay=0.2))
    session = session_for(db, fake_openai, flush_interval=0.0)
    seen: list[str] = []

    async def consume() -> None:
        async for event in session.send("tell me a long story"):
            if isinstance(event, TextDelta):
                seen.append(event.text)

    task = asyncio.create_task(consume())
    while len(seen) < 2:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await session.provider.aclose()
    reply = today_messages(db)[1]
    assert reply.status == Status.INTERRUPTED
    assert reply.content == "".join(seen) and reply.content


async def test_malformed_stream_after_text_keeps_text_as_error(
    db: Database, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(Text("partial words", finish="", usage=None, done=False))
    with pytest.raises(ProviderError):
        await run(session_for(db, fake_openai), "hi")
    reply = today_messages(db)[1]
    assert (reply.status, reply.content) == (Status.ERROR, "partial words")


async def test_remember_tool_loop(db: Database, fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(
        ToolCalls(
            [("remember", {"content": "Their cat is called Miso", "title": "cat"})]
        ),
        Text("Got it, I'll remember Miso!"),
    )
    events = await run(session_for(db, fake_openai), "my cat is called Miso")
    used = [e for e in events if isinstance(e, ToolUsed)]
    assert [u.name for u in used] == ["remember"] and used[0].ok
    assert [m.content for m in mem.list_memory(db)] == ["Their cat is called Miso"]
    second = fake_openai.requests[1]["messages"]
    assert second[-2]["tool_calls"][0]["function"]["name"] == "remember"
    assert second[-1]["role"] == "tool" and "saved" in second[-1]["content"]
    reply = today_messages(db)[1]
    assert reply.content == "Got it, I'll remember Miso!"
    assert reply.metadata["tools"][0]["memory_id"] == used[0].memory_id


async def test_forget_and_bad_tool_arguments(
    db: Database, fake_openai: FakeOpenAI
) -> None:
    note = mem.add_memory(db, "likes pineapple pizza")
    fake_openai.enqueue(
        ToolCalls([("forget", {"id": note.id[:8]}), ("recall", {"query": "pizza"})]),
        ToolCalls([("remember", {})]),
        Text("Done."),
    )
    events = await run(session_for(db, fake_openai), "forget the pizza thing")
    used = [e for e in events if isinstance(e, ToolUsed)]
    assert [(u.name, u.ok) for u in used] == [
        ("forget", True),
        ("recall", True),
        ("remember", False),
    ]
    assert mem.list_memory(db) == []


async def test_context_has_memory_today_and_yesterday_recap(
    db: Database, fake_openai: FakeOpenAI
) -> None:
    yesterday = conv.ensure_conversation(db, "2000-01-01", "UTC")
    conv.add_message(
        db,
        conversation_id=yesterday.id,
        role=Role.USER,
        content="exam tomorrow, nervous",
    )
    mem.add_memory(db, "Their sister is called Ada")
    fake_openai.enqueue(Text("first"), Text("second"))
    session = session_for(db, fake_openai)
    await run(session, "hello")
    await run(session_for(db, fake_openai), "how did my exam go?")
    system = fake_openai.requests[1]["messages"][0]["content"]
    assert "sister is called Ada" in system
    assert "Recap of your last conversation (2000-01-01)" in system
    assert "exam tomorrow, nervous" in system
    history = fake_openai.requests[1]["messages"][1:]
    assert [m["content"] for m in history] == ["hello", "first", "how did my exam go?"]


async def test_context_budget_drops_oldest_messages(
    db: Database, fake_openai: FakeOpenAI
) -> None:
    c = conv.ensure_conversation(db, days.today("UTC"), "UTC")
    for i in range(50):
        conv.add_message(
            db, conversation_id=c.id, role=Role.USER, content=f"msg {i} " * 50
        )
    await run(session_for(db, fake_openai, context_tokens=2000), "latest")
    sent = fake_openai.requests[0]["messages"]
    contents = [m["content"] for m in sent[1:]]
    assert contents[-1] == "latest"
    assert contents[-2].startswith("msg 49 ")
    assert not any(c.startswith("msg 0 ") for c in contents)
    assert sum(len(json.dumps(m)) for m in sent) < 2000 * 4 + 2000


async def test_image_is_sent_as_data_url(
    db: Database, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    from grizz_core.companion.attachments import load_image

    png = tmp_path / "bear.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 32)
    session = session_for(db, fake_openai)
    try:
        [e async for e in session.send("what is this?", attachments=[load_image(png)])]
    finally:
        await session.provider.aclose()
    content = fake_openai.requests[0]["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "what is this?"}
    assert content[1]["image_url"]["url"].startswith(
        "data:image/png;base64,iVBORw0KGgo"
    )
    assert conv.attachments_of(db, today_messages(db)[0].id)[0].name == "bear.png"


async def test_retried_job_reuses_the_reply_row(
    db: Database, fake_openai: FakeOpenAI
) -> None:
    store = LocalChatStore(db)
    c = conv.ensure_conversation(db, days.today("UTC"), "UTC")
    user = conv.add_message(db, conversation_id=c.id, role=Role.USER, content="hi")
    fake_openai.enqueue(Text("attempt one"), Text("attempt two"))
    for _ in range(2):
        session = session_for(db, fake_openai)
        try:
            [e async for e in session.respond(user, reply_id="job-1-reply")]
        finally:
            await session.provider.aclose()
    replies = [m for m in today_messages(db) if m.role == Role.ASSISTANT]
    assert [(m.id, m.content) for m in replies] == [("job-1-reply", "attempt two")]
    assert store.db is db
