"""The job queue against a real Redis: admission, fencing, reclaim, retry, DLQ."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from grizz_server import keys
from grizz_server.queue import scripts
from grizz_server.queue.admission import JobAdmission
from grizz_server.queue.jobs import (
    Admission,
    Attempt,
    Delivery,
    JobMessage,
    job_id_for,
    reply_id_for,
)
from grizz_server.queue.leases import JobLeases
from grizz_server.queue.pipeline import ScriptPipeline
from grizz_server.settings import ServerSettings


def _job(
    user: str = "u1", message_id: str = "", text: str = "Hello, Grizz"
) -> JobMessage:
    message_id = message_id or str(uuid.uuid4())
    return JobMessage(
        job_id=job_id_for(user, message_id),
        user_id=user,
        message_id=message_id,
        conversation_id="conv",
        day="2026-11-23",
        zone="Europe/Paris",
        tz="Europe/Paris",
        text=text,
    )


async def _enqueue(admission: JobAdmission, user: str = "u1") -> str:
    job = _job(user)
    assert (await admission.submit(job)).status == "queued"
    return job.job_id


async def _out(redis: Redis, job_id: str) -> list[tuple[int, str, str]]:
    entries = await redis.xrange(keys.job_out(job_id))
    return [
        (int(f[b"a"]), f[b"k"].decode(), f.get(b"t", b"").decode()) for _, f in entries
    ]


async def _begin_one(leases: JobLeases) -> Attempt:
    deliveries = await leases.read(1, 100)
    assert len(deliveries) == 1
    attempt = await leases.begin(deliveries[0])
    assert isinstance(attempt, Attempt), attempt
    return attempt


def _other(leases: JobLeases, name: str = "other") -> JobLeases:
    """Another worker process: its own consumer name and script pipeline."""
    return JobLeases(ScriptPipeline(leases.redis), leases.settings, consumer=name)


async def test_happy_path_streams_and_closes_the_job(
    admission: JobAdmission, leases: JobLeases, aredis: Redis
) -> None:
    job_id = await _enqueue(admission)
    attempt = await _begin_one(leases)
    assert attempt.attempt == 1 and attempt.reply_id == reply_id_for(job_id)
    assert await leases.append(attempt, [("chunk", "Hel", "")])
    assert await leases.append(attempt, [("chunk", "lo", "")])
    assert await leases.finish(attempt, {"id": attempt.reply_id, "content": "Hello"})
    kinds = [(a, k) for a, k, _ in await _out(aredis, job_id)]
    assert kinds == [(1, "start"), (1, "chunk"), (1, "chunk"), (1, "done")]
    pending = await aredis.xpending(keys.JOBS, keys.GROUP)
    assert pending["pending"] == 0
    assert await aredis.xlen(keys.JOBS) == 0
    assert await aredis.zcard(keys.INFLIGHT) == 0
    assert await aredis.ttl(keys.job_out(job_id)) > 0
    assert await aredis.hget(keys.job_info(job_id), "state") == b"done"


async def test_the_same_message_is_one_job(
    admission: JobAdmission, leases: JobLeases
) -> None:
    job = _job()
    assert (await admission.submit(job)).status == "queued"
    again = await admission.submit(job)
    assert again.status == "exists" and again.state == "queued"
    assert len(await leases.read(10, 50)) == 1


async def test_the_job_carries_the_message_to_the_worker(
    admission: JobAdmission, leases: JobLeases
) -> None:
    job = _job(text="It snowed in the den 🐻")
    await admission.submit(job)
    attempt = await _begin_one(leases)
    assert (attempt.message_id, attempt.text) == (job.message_id, job.text)
    assert (attempt.conversation_id, attempt.day, attempt.zone, attempt.tz) == (
        "conv",
        "2026-11-23",
        "Europe/Paris",
        "Europe/Paris",
    )


async def test_cancel_withdraws_a_job_and_fences_its_attempt(
    admission: JobAdmission, leases: JobLeases, aredis: Redis
) -> None:
    queued = _job()
    await admission.submit(queued)
    assert await admission.cancel("u1", queued.job_id)
    assert await leases.read(10, 50) == []  # gone from the queue unread
    assert await aredis.zcard(keys.INFLIGHT) == 0
    assert await aredis.zcard(keys.user_active("u1")) == 0
    # a re-send of the same message is admitted afresh
    assert (await admission.submit(queued)).status == "queued"
    running = await _begin_one(leases)
    assert await admission.cancel("u1", queued.job_id)
    assert not await leases.append(running, [("chunk", "late", "")])
    assert not await leases.finish(running, {"content": "late"})
    assert not await aredis.exists(keys.job_out(queued.job_id))
    assert (await aredis.xpending(keys.JOBS, keys.GROUP))["pending"] == 0
    assert not await admission.cancel("u1", queued.job_id)  # nothing left to cancel


async def test_a_finished_job_is_not_cancelled(
    admission: JobAdmission, leases: JobLeases, aredis: Redis
) -> None:
    job_id = await _enqueue(admission)
    attempt = await _begin_one(leases)
    assert await leases.finish(attempt, {"content": "done"})
    assert not await admission.cancel("u1", job_id)
    assert await aredis.hget(keys.job_info(job_id), "state") == b"done"


async def test_a_zombie_is_fenced_after_reclaim(
    admission: JobAdmission, leases: JobLeases, aredis: Redis
) -> None:
    job_id = await _enqueue(admission)
    zombie = await _begin_one(leases)
    assert await leases.append(zombie, [("chunk", "old ", "")])
    other = _other(leases)
    assert (
        await other.reclaim(10) == []
    )  # not idle long enough: a live job is not stolen
    await asyncio.sleep(leases.settings.visibility_ms / 1000 + 0.1)
    reclaimed = await other.reclaim(10)
    assert [d.job_id for d in reclaimed] == [job_id]
    second = await other.begin(reclaimed[0])
    assert isinstance(second, Attempt) and second.attempt == 2
    assert not await leases.append(zombie, [("chunk", "zombie text", "")])
    assert not await leases.extend(zombie)
    assert not await leases.finish(zombie, {"content": "zombie"})
    assert await leases.fail(zombie, code="x", reason="x", retryable=True) == "fenced"
    assert await other.append(second, [("chunk", "new", "")])
    assert await other.finish(second, {"content": "new"})
    out = await _out(aredis, job_id)
    assert [(a, k) for a, k, _ in out] == [
        (1, "start"),
        (1, "chunk"),
        (2, "restart"),
        (2, "chunk"),
        (2, "done"),
    ]
    assert "zombie" not in str(out)


async def test_extend_keeps_a_live_job_from_being_reclaimed(
    admission: JobAdmission, leases: JobLeases
) -> None:
    await _enqueue(admission)
    live = await _begin_one(leases)
    other = _other(leases)
    for _ in range(6):  # 6 x 200 ms is well past the 700 ms visibility timeout
        await asyncio.sleep(0.2)
        assert await leases.extend(live)
        assert await other.reclaim(10) == []


async def test_release_hands_the_job_back_at_once(
    admission: JobAdmission, leases: JobLeases
) -> None:
    job_id = await _enqueue(admission)
    first = await _begin_one(leases)
    assert await leases.release(first)
    reclaimed = await _other(leases).reclaim(10)
    assert [d.job_id for d in reclaimed] == [job_id]


async def test_retries_with_backoff_then_dead_letters(
    admission: JobAdmission, leases: JobLeases, aredis: Redis
) -> None:
    job_id = await _enqueue(admission)
    outcomes = []
    for _ in range(3):
        deliveries: list[Delivery] = []
        for _ in range(50):
            await leases.promote()
            deliveries = await leases.read(1, 50)
            if deliveries:
                break
        attempt = await leases.begin(deliveries[0])
        assert isinstance(attempt, Attempt)
        outcomes.append(
            await leases.fail(
                attempt, code="job_failed", reason="HTTP 500", retryable=True
            )
        )
    assert outcomes == ["retry", "retry", "dead"]
    dead = await aredis.xrange(keys.DLQ)
    assert len(dead) == 1 and dead[0][1][b"job"].decode() == job_id
    assert dead[0][1][b"attempts"] == b"3"
    out = await _out(aredis, job_id)
    assert [k for _, k, _ in out] == [
        "start",
        "retry",
        "restart",
        "retry",
        "restart",
        "error",
    ]
    assert await aredis.zcard(keys.INFLIGHT) == 0
    assert await aredis.zcard(keys.user_active("u1")) == 0
    assert (await aredis.xpending(keys.JOBS, keys.GROUP))["pending"] == 0


async def test_unrecoverable_errors_skip_retries(
    admission: JobAdmission, leases: JobLeases, aredis: Redis
) -> None:
    await _enqueue(admission)
    attempt = await _begin_one(leases)
    assert (
        await leases.fail(attempt, code="job_failed", reason="bad key", retryable=False)
        == "dead"
    )
    assert await aredis.xlen(keys.DLQ) == 1


async def test_delivery_count_backstop(
    aredis: Redis, fast_settings: ServerSettings
) -> None:
    settings = dataclasses.replace(fast_settings, max_deliveries=1)
    scripts_ = ScriptPipeline(aredis)
    admission = JobAdmission(scripts_, settings)
    leases = JobLeases(scripts_, settings, consumer="a")
    await leases.ensure_group()
    job_id = await _enqueue(admission)
    assert (
        len(await leases.read(1, 50)) == 1
    )  # delivered, then the worker "dies" silently
    await asyncio.sleep(settings.visibility_ms / 1000 + 0.1)
    other = _other(leases)
    reclaimed = await other.reclaim(10)
    assert await other.begin(reclaimed[0]) == "dead"
    assert (await aredis.xrange(keys.DLQ))[0][1][b"job"].decode() == job_id


async def test_stale_redelivery_of_a_finished_job_is_dropped(
    admission: JobAdmission, leases: JobLeases
) -> None:
    await _enqueue(admission)
    deliveries = await leases.read(1, 50)
    attempt = await leases.begin(deliveries[0])
    assert isinstance(attempt, Attempt)
    assert await leases.finish(attempt, {})
    assert await leases.begin(deliveries[0]) in ("stale", "gone")


async def test_backpressure_refuses_past_the_queue_depth(
    aredis: Redis, fast_settings: ServerSettings
) -> None:
    settings = dataclasses.replace(
        fast_settings, max_queue_depth=2, max_active_per_user=10
    )
    scripts_ = ScriptPipeline(aredis)
    admission = JobAdmission(scripts_, settings)
    await JobLeases(scripts_, settings).ensure_group()
    await _enqueue(admission, "a")
    await _enqueue(admission, "b")
    assert (await admission.submit(_job("c"))).status == "busy"


async def test_per_user_concurrency_and_rate(
    aredis: Redis, fast_settings: ServerSettings
) -> None:
    settings = dataclasses.replace(fast_settings, max_active_per_user=1)
    admission = JobAdmission(ScriptPipeline(aredis), settings)
    await _enqueue(admission, "a")
    assert (await admission.submit(_job("a"))).status == "too_many"
    assert (await admission.submit(_job("b"))).status == "queued"
    settings = dataclasses.replace(
        fast_settings, rate_burst=2, rate_per_minute=1, max_active_per_user=100
    )
    admission = JobAdmission(ScriptPipeline(aredis), settings)
    assert (await admission.submit(_job("r"))).status == "queued"
    assert (await admission.submit(_job("r"))).status == "queued"
    refused = await admission.submit(_job("r"))
    assert refused.status == "rate" and 0 < refused.retry_after_ms <= 60_000


async def _next_message(pubsub: PubSub) -> dict[str, Any] | None:
    """The next published message, waiting up to 2.5 s."""
    for _ in range(50):
        message = await pubsub.get_message(timeout=0.05)
        if message:
            return message
    return None


async def test_output_entries_are_copied_to_the_users_live_gateways(
    admission: JobAdmission, leases: JobLeases, aredis: Redis
) -> None:
    now_ms = int(time.time() * 1000)
    await aredis.zadd(
        keys.user_gateways("u1"), {"gw-live": now_ms + 60_000, "gw-gone": now_ms - 1}
    )
    await aredis.zadd(keys.user_gateways("u2"), {"gw-other": now_ms + 60_000})
    job_id = await _enqueue(admission)
    attempt = await _begin_one(leases)
    assert await leases.append(attempt, [("chunk", "Hi", "")])
    assert await leases.finish(attempt, {"content": "Hi"})
    out = await aredis.xrange(keys.job_out(job_id))
    inbox = await aredis.xrange(keys.gateway_inbox("gw-live"))
    # every entry but `start` (which devices never see), with its job and id
    assert [(f[b"j"].decode(), f[b"e"], f[b"k"]) for _, f in inbox] == [
        (job_id, entry_id, fields[b"k"])
        for entry_id, fields in out
        if fields[b"k"] != b"start"
    ]
    assert [f[b"k"] for _, f in inbox] == [b"chunk", b"done"]
    assert inbox[0][1][b"t"] == b"Hi"
    # an inbox whose gateway died expires on its own
    assert 0 < await aredis.pttl(keys.gateway_inbox("gw-live")) <= scripts.INBOX_TTL_MS
    assert not await aredis.exists(keys.gateway_inbox("gw-gone"))
    assert not await aredis.exists(keys.gateway_inbox("gw-other"))
    # the Lua scripts build the inbox name themselves
    assert scripts.INBOX_KEY.format(gateway="x") == keys.gateway_inbox("x")


async def test_finish_writes_the_last_entries_before_done_and_publishes(
    admission: JobAdmission, leases: JobLeases, aredis: Redis
) -> None:
    job_id = await _enqueue(admission)
    attempt = await _begin_one(leases)
    pubsub = aredis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(keys.user_changes("u1"))
    try:
        assert await leases.append(
            attempt, [("chunk", "Hel", ""), ("tool", "remember", "a note")]
        )
        assert await leases.finish(
            attempt,
            {"content": "Hello"},
            entries=[("chunk", "lo", "")],
            event={"kind": "changed", "cursor": 7},
        )
        assert [(k, t) for _, k, t in await _out(aredis, job_id)][1:] == [
            ("chunk", "Hel"),
            ("tool", "remember"),
            ("chunk", "lo"),
            ("done", '{"content": "Hello"}'),
        ]
        message = await _next_message(pubsub)
        assert message is not None and b'"cursor": 7' in message["data"]
    finally:
        await pubsub.aclose()


async def test_begin_many_starts_a_batch_even_after_redis_forgot_its_scripts(
    admission: JobAdmission, leases: JobLeases, aredis: Redis
) -> None:
    jobs = {await _enqueue(admission, f"u{i}") for i in range(3)}
    deliveries = await leases.read(10, 100)
    assert {d.job_id for d in deliveries} == jobs
    await aredis.script_flush()  # as after a Redis restart: every EVALSHA fails
    begun = await leases.begin_many(deliveries)
    assert all(isinstance(a, Attempt) and a.attempt == 1 for a in begun)
    assert {a.delivery.job_id for a in begun if isinstance(a, Attempt)} == jobs
    # the same deliveries again: each job is leased to its attempt now
    assert await _other(leases).begin_many(deliveries) == ["leased"] * 3


async def test_calls_of_one_turn_share_a_pipeline_and_keep_their_own_replies(
    admission: JobAdmission, leases: JobLeases, aredis: Redis
) -> None:
    """Different scripts called in the same event-loop turn go to Redis together;
    each caller still gets its own reply or error, also after Redis lost its
    script cache."""
    await _enqueue(admission, "a")
    await _enqueue(admission, "b")
    first = await _begin_one(leases)
    second = await _begin_one(leases)
    await aredis.script_flush()
    appended, extended, fenced, refused = await asyncio.gather(
        leases.append(first, [("chunk", "one", "")]),
        leases.extend(second),
        leases.append(dataclasses.replace(second, token="stale"), [("chunk", "x", "")]),
        admission.submit(_job("a", message_id=first.message_id)),
        return_exceptions=True,
    )
    assert (appended, extended, fenced) == (True, True, False)
    assert isinstance(refused, Admission) and refused.status == "exists"
    assert [
        t for _, k, t in await _out(aredis, first.delivery.job_id) if k == "chunk"
    ] == ["one"]
