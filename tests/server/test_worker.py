"""The worker's reply path: batched output entries, the reply row written once."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from grizz_core import protocol as p
from grizz_server import keys
from grizz_server.queue.admission import JobAdmission
from grizz_server.queue.jobs import Attempt
from grizz_server.queue.leases import JobLeases
from grizz_server.worker.handlers import Fenced, Output
from tests.fakes.openai_server import FakeOpenAI, Text
from tests.server.conftest import Stack
from tests.server.test_queue import _begin_one, _enqueue, _other


async def _entries(redis: Redis, job_id: str) -> list[tuple[str, str]]:
    return [
        (f[b"k"].decode(), f.get(b"t", b"").decode())
        for _, f in await redis.xrange(keys.job_out(job_id))
    ]


async def test_output_joins_the_chunks_that_arrive_while_an_append_is_on_its_way(
    admission: JobAdmission, leases: JobLeases, aredis: Redis
) -> None:
    job_id = await _enqueue(admission)
    attempt = await _begin_one(leases)
    output = Output(leases, attempt)
    words = [f"w{i} " for i in range(200)]
    for word in words:  # no await returns to the loop between these adds
        await output.add("chunk", word)
    await output.add("tool", "remember", "a note")
    await output.add("chunk", "after")
    rest = await output.rest()
    assert await leases.finish(attempt, {"content": ""}, entries=rest)
    entries = await _entries(aredis, job_id)
    chunks = [t for k, t in entries if k == "chunk"]
    assert "".join(chunks) == "".join(words) + "after"
    assert len(chunks) <= 3  # the first word alone, then the rest joined
    kinds = [k for k, _ in entries]
    assert kinds[0] == "start" and kinds[-1] == "done"
    assert kinds.index("tool") < len(kinds) - 2  # the tool entry keeps its place
    await output.close()


async def test_output_of_a_fenced_attempt_raises(
    admission: JobAdmission, leases: JobLeases
) -> None:
    await _enqueue(admission)
    zombie = await _begin_one(leases)
    output = Output(leases, zombie)
    await asyncio.sleep(leases.settings.visibility_ms / 1000 + 0.1)
    other = _other(leases)
    reclaimed = await other.reclaim(10)
    assert isinstance(await other.begin(reclaimed[0]), Attempt)
    with pytest.raises(Fenced):
        for _ in range(50):
            await output.add("chunk", "zombie ")
            await asyncio.sleep(0.01)
        await output.rest()
    await output.close()


async def test_the_reply_row_is_written_once_whole(
    stack: Stack, provider_env: FakeOpenAI
) -> None:
    text = "One, two, three, four, five, six, seven, eight."
    provider_env.enqueue(Text(text, chunk=2, delay=0.01))
    device = await stack.device("alice")
    await device.wait_for(lambda: device.frame(p.Welcome))
    store = stack.store.for_user(stack.user_ids["alice"])
    accepted = await device.say("Count for me?")
    before = await store.current_seq()
    reply = await device.finished(accepted.job_id)
    assert reply.text == text and reply.done is not None
    assert reply.done.message["status"] == "complete"
    # exactly one change for the reply: it was never stored half-written
    assert await store.current_seq() == before + 1
    stored = await store.get_message(accepted.reply_id)
    assert stored is not None and stored.content == text
    assert stored.metadata["reply_to"] == accepted.message_id
    assert stored.metadata["finish_reason"] == "stop"
    await device.close()


async def test_a_lost_gateway_registration_heals_from_the_job_stream(
    stack: Stack,
    provider_env: FakeOpenAI,
    aredis: Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Entries reach a gateway through its inbox only while it is registered for
    the user; if Redis loses that (a restart without persistence), the idle
    check reads the job's own stream and the device still gets every chunk."""
    from grizz_server.gateway import streams

    monkeypatch.setattr(streams, "IDLE_CHECK_S", 0.3)
    text = "Slowly, slowly, the bear walks home."
    provider_env.enqueue(Text(text, chunk=4, delay=0.05))
    device = await stack.device("alice")
    await device.wait_for(lambda: device.frame(p.Welcome))
    await aredis.delete(keys.user_gateways(stack.user_ids["alice"]))
    accepted = await device.say("Walk with me?")
    reply = await device.finished(accepted.job_id)
    assert reply.text == text and reply.done is not None
    await device.close()
