"""Defects a new-user acceptance walkthrough found, each pinned by a test."""

from __future__ import annotations

import uuid

from grizz_tui import protocol as p
from tests.fakes.openai_server import FakeOpenAI, Text
from tests.server.conftest import Stack


async def test_a_resend_with_other_text_is_a_conflict(
    stack: Stack, provider_env: FakeOpenAI
) -> None:
    provider_env.enqueue(Text("Only once."))
    device = await stack.device("alice")
    message_id = str(uuid.uuid4())
    first = await device.say("original", message_id=message_id, day="2026-11-20")
    await device.finished(first.job_id)
    store = stack.store.for_user(stack.user_ids["alice"])
    cursor = await store.current_seq()
    refused = await device.request(
        p.Send(text="DIFFERENT", message_id=message_id), p.Accepted
    )
    assert isinstance(refused, p.Error) and refused.code == p.CONFLICT
    other_day = await device.request(
        p.Send(text="original", message_id=message_id, day="2026-11-21"), p.Accepted
    )
    assert isinstance(other_day, p.Error) and other_day.code == p.CONFLICT
    stored = await store.get_message(message_id)
    assert stored is not None and stored.content == "original"
    assert await store.current_seq() == cursor  # nothing changed
    # an identical re-send (with or without its day) is still a duplicate
    # (each on its own device: a duplicate replays the reply from its start)
    for day in ("2026-11-20", ""):
        phone = await stack.device("alice")
        again = await phone.say("original", message_id=message_id, day=day)
        assert again.duplicate and again.job_id == first.job_id
        assert again.message["content"] == "original"
        await phone.close()
    assert len(provider_env.requests) == 1
    await device.close()
