"""The message travels in its job: queued first, stored by the gateway or the worker.

Real gateway, worker, Redis and SQLite (the `stack` fixture), the fake provider.
"""

from __future__ import annotations

import asyncio
import uuid

from redis.asyncio import Redis

from grizz_core import days
from grizz_core import protocol as p
from grizz_core.domain import Role, day_conversation_id
from grizz_server import keys
from grizz_server.queue.jobs import JobMessage, job_id_for, reply_id_for
from tests.fakes.openai_server import FakeOpenAI, Text
from tests.server.conftest import Stack
from tests.server.harness import until


async def _wait_stored(stack: Stack, user: str, message_id: str) -> None:
    store = stack.store.for_user(stack.user_ids[user])

    async def complete() -> bool:
        stored = await store.get_message(message_id)
        return stored is not None and stored.status == "complete"

    await until(complete, what=f"{message_id} stored complete")


async def test_a_job_whose_message_the_gateway_never_stored_still_keeps_it(
    stack: Stack, provider_env: FakeOpenAI
) -> None:
    """A gateway that died between queueing and writing: the worker stores the
    message from the job before it asks the model, so nothing is lost."""
    provider_env.enqueue(Text("I kept your words safe.", chunk=3, delay=0.1))
    user_id = stack.user_ids["alice"]
    message_id = str(uuid.uuid4())
    day = days.today("UTC")
    job = JobMessage(
        job_id=job_id_for(user_id, message_id),
        user_id=user_id,
        message_id=message_id,
        conversation_id=day_conversation_id(day),
        day=day,
        zone="UTC",
        tz="UTC",
        text="Remember this one for me?",
    )
    assert (await stack.gateway.gateway.context.queue.submit(job)).status == "queued"
    reply_id = reply_id_for(job.job_id)
    store = stack.store.for_user(user_id)
    # the model has the message: the store must have it too
    await until(lambda: provider_env.requests, what="the model's request")
    assert provider_env.requests and await store.get_message(message_id) is not None
    assert await store.get_message(reply_id) is None  # still streaming
    await _wait_stored(stack, "alice", reply_id)
    message = await store.get_message(message_id)
    reply = await store.get_message(reply_id)
    assert message is not None and reply is not None
    assert (message.role, message.content) == (Role.USER, job.text)
    assert message.conversation_id == reply.conversation_id == job.conversation_id
    assert reply.content == "I kept your words safe."
    changes, _, _ = await store.pull(0, 100)
    ids = [c["id"] for c in changes if c["entity"] == "messages"]
    assert ids.index(message_id) < ids.index(reply_id)  # the message first
    assert provider_env.requests[-1]["messages"][-1]["content"] == job.text


async def test_a_resend_of_a_finished_message_is_a_duplicate_of_its_job(
    stack: Stack, provider_env: FakeOpenAI, aredis: Redis
) -> None:
    provider_env.enqueue(Text("First answer."), Text("Should never be sent."))
    device = await stack.device("alice")
    await device.wait_for(lambda: device.frame(p.Welcome))
    first = await device.say("The original words.")
    await device.finished(first.job_id)
    await device.close()
    # the same id and words map to the same job, answered once (a device that
    # lost the reply re-sends: it is streamed again from the start)
    device = await stack.device("alice")
    await device.wait_for(lambda: device.frame(p.Welcome))
    again = await device.say("The original words.", message_id=first.message_id)
    assert again.duplicate and again.job_id == first.job_id
    assert again.message["content"] == "The original words."
    await device.finished(first.job_id)
    # other words under that id are a conflict, and change nothing
    other = await device.request(
        p.Send(text="Other words.", message_id=first.message_id, tz="UTC"),
        p.Accepted,
    )
    assert isinstance(other, p.Error) and other.code == p.CONFLICT
    kept = await stack.store.for_user(stack.user_ids["alice"]).get_message(
        first.message_id
    )
    assert kept is not None and kept.content == "The original words."
    assert len(provider_env.requests) == 1
    assert await aredis.hget(keys.job_info(first.job_id), "state") == b"done"
    await device.close()


async def test_a_conflicting_message_withdraws_its_job(
    stack: Stack, provider_env: FakeOpenAI, aredis: Redis
) -> None:
    """The id already holds a different message that has no job (it came by
    `push`): the queued job is withdrawn, nothing is answered, and the stored
    message is untouched."""
    provider_env.enqueue(Text("Never streamed.", chunk=2, delay=0.2))
    device = await stack.device("alice")
    await device.wait_for(lambda: device.frame(p.Welcome))
    store = stack.store.for_user(stack.user_ids["alice"])
    day = days.today("UTC")
    conv = await store.ensure_day(day, "UTC")
    pushed = await store.add_message(
        conversation_id=conv, role=Role.USER, content="Pushed from a phone."
    )
    answer = await device.request(
        p.Send(text="Different words.", message_id=pushed.id, tz="UTC"), p.Accepted
    )
    assert isinstance(answer, p.Error) and answer.code == p.CONFLICT
    job_id = job_id_for(stack.user_ids["alice"], pushed.id)
    assert not await aredis.exists(keys.job_info(job_id))
    assert await aredis.zcard(keys.user_active(stack.user_ids["alice"])) == 0
    kept = await store.get_message(pushed.id)
    assert kept is not None and kept.content == "Pushed from a phone."
    # a worker that had begun is fenced off. Bob's message is queued after the
    # withdrawn job, so the (only) worker begins it after that job (or after
    # finding it gone); once bob's reply is done and the worker runs nothing,
    # any attempt at the withdrawn job has ended.
    with provider_env.lock:  # bob's reply first; a late attempt gets alice's
        provider_env.queue.appendleft(Text("A later reply."))
    bob = await stack.device("bob")
    later = await bob.say("A later message.")
    await bob.finished(later.job_id)
    worker = stack.worker_objects[0]
    await until(lambda: not worker.tasks, what="the worker to run nothing")
    assert await store.get_message(reply_id_for(job_id)) is None
    assert device.frame(p.Done) is None
    await bob.close()
    await device.close()


async def test_a_resend_before_the_first_write_lands_is_one_message(
    stack: Stack, provider_env: FakeOpenAI
) -> None:
    provider_env.enqueue(Text("Just once."))
    device = await stack.device("alice")
    await device.wait_for(lambda: device.frame(p.Welcome))
    message_id = str(uuid.uuid4())
    await asyncio.gather(
        device.send_frame(p.Send(text="Twice?", message_id=message_id, ref="a")),
        device.send_frame(p.Send(text="Twice?", message_id=message_id, ref="b")),
    )

    def accepted() -> list[p.Accepted]:
        return [f for f in device.frames if isinstance(f, p.Accepted)]

    both = await device.wait_for(lambda: accepted() if len(accepted()) >= 2 else None)
    assert {a.message_id for a in both} == {message_id}
    assert sorted(a.duplicate for a in both) == [False, True]
    reply = await device.finished(both[0].job_id)
    assert reply.text == "Just once."
    assert len(provider_env.requests) == 1
    await device.close()


async def test_the_sender_gets_accepted_and_the_other_devices_job_and_changed(
    stack: Stack, provider_env: FakeOpenAI
) -> None:
    provider_env.enqueue(Text("Hello, both of you."))
    laptop = await stack.device("alice")
    phone = await stack.device("alice")
    for device in (laptop, phone):
        await device.wait_for(lambda d=device: d.frame(p.Welcome))
    accepted = await laptop.say("Which device am I on?")
    await phone.finished(accepted.job_id)
    await laptop.finished(accepted.job_id)

    def announced(device: object) -> list[p.Changed]:
        return [
            f
            for f in device.frames  # type: ignore[attr-defined]
            if isinstance(f, p.Changed)
            and any(c["id"] == accepted.message_id for c in f.changes)
        ]

    assert phone.frame(p.Job, job_id=accepted.job_id) is not None
    assert len(announced(phone)) == 1
    assert laptop.frame(p.Job) is None and announced(laptop) == []
    for device in (laptop, phone):  # both learn of the reply row
        await device.wait_for(
            lambda d=device: any(
                isinstance(f, p.Changed)
                and any(c["id"] == accepted.reply_id for c in f.changes)
                for f in d.frames
            )
        )
        await device.close()
