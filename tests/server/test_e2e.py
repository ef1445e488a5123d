"""End to end over real sockets: devices, gateway, queue, worker, store, fake LLM."""

from __future__ import annotations

from grizz_core import protocol as p
from grizz_core.domain import Role, Status
from tests.fakes.openai_server import FakeOpenAI, Text
from tests.server.conftest import Stack


async def test_two_devices_see_the_reply_and_another_user_sees_nothing(
    any_db_stack: Stack, provider_env: FakeOpenAI
) -> None:
    stack = any_db_stack
    provider_env.enqueue(Text("Hello from the den, friend!", chunk=3))
    laptop = await stack.device("alice")
    phone = await stack.device("alice")
    bob = await stack.device("bob")
    for device in (laptop, phone, bob):
        await device.wait_for(lambda d=device: d.frame(p.Welcome))
    accepted = await laptop.say("Hi Grizz!")
    for device in (laptop, phone):
        reply = await device.finished(accepted.job_id)
        assert reply.error is None and reply.done is not None
        assert reply.text == "Hello from the den, friend!"
        assert reply.done.message["content"] == reply.text
        assert reply.done.message["status"] == "complete"
    assert phone.frame(p.Job, job_id=accepted.job_id)
    changed = await phone.wait_for(
        lambda: [
            f
            for f in phone.frames
            if isinstance(f, p.Changed)
            and any(c["id"] == accepted.reply_id for c in f.changes)
        ]
    )
    assert changed
    store = stack.store.for_user(stack.user_ids["alice"])
    stored = await store.recent_messages(accepted.conversation_id, limit=10)
    assert [(m.role, m.status) for m in reversed(stored)] == [
        (Role.USER, Status.COMPLETE),
        (Role.ASSISTANT, Status.COMPLETE),
    ]
    assert stored[0].id == accepted.reply_id
    assert not any(
        isinstance(f, p.Chunk | p.Job | p.Changed | p.Done) for f in bob.frames
    )
    bob_pull = await bob.request(p.Pull(after=0), p.Changes)
    assert bob_pull.changes == []
    alice_pull = await laptop.request(p.Pull(after=0), p.Changes)
    assert {c["id"] for c in alice_pull.changes} >= {
        accepted.message_id,
        accepted.reply_id,
    }
    for device in (laptop, phone, bob):
        await device.close()
