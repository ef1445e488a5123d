"""Crash safety with real processes: kill -9 workers and gateways, restart Redis,
drop clients. Every reply must complete exactly once, on every device."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from grizz_core import protocol as p
from grizz_core.domain import Role, Status
from grizz_server import keys
from grizz_server.redis_server import RedisProcess, free_port
from grizz_server.settings import ServerSettings
from tests.fakes.openai_server import FakeOpenAI, Text
from tests.server.conftest import Stack, start_stack, stop_stack
from tests.server.harness import Device, ProcessPool, Reply, provider_env_vars

TRIALS = int(os.environ.get("GRIZZ_CRASH_TRIALS", "50"))
REPLY = "Bears nap in the warm afternoon sun and dream of honey. " * 2
"""~110 characters in 4-character chunks 10 ms apart: about 0.3 s of streaming."""
_NONE = Reply()


@pytest.fixture
def slow_fake() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(default=Text(REPLY, chunk=4, delay=0.01)).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def crash_settings(server_settings: ServerSettings) -> ServerSettings:
    return dataclasses.replace(
        server_settings,
        lease_ms=300,
        visibility_ms=500,
        block_ms=50,
        heartbeat_ms=100,
        max_active_per_user=100,
        rate_burst=1000,
        rate_per_minute=60_000,
        # a 300 ms lease is short enough that a loaded CI machine can stall a
        # worker past it now and then; fencing handles that (an extra attempt),
        # so leave room for it instead of dead-lettering a healthy job
        max_attempts=6,
        max_deliveries=10,
    )


@pytest.fixture
def pool(
    crash_settings: ServerSettings,
    slow_fake: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[ProcessPool]:
    for name, value in provider_env_vars(slow_fake).items():
        monkeypatch.setenv(name, value)
    processes = ProcessPool(crash_settings, provider_env_vars(slow_fake))
    try:
        yield processes
    finally:
        processes.stop_all()


@pytest.fixture
async def gateway_only(
    crash_settings: ServerSettings, pool: ProcessPool
) -> AsyncIterator[Stack]:
    running = await start_stack(crash_settings, workers=0)
    try:
        yield running
    finally:
        await stop_stack(running)


async def _live_workers(redis: Redis, pool: ProcessPool, need: int) -> None:
    for _ in range(200):
        beats = [
            json.loads(v)
            for v in await redis.mget(
                [k async for k in redis.scan_iter(match=keys.worker("*"))] or ["-"]
            )
            if v
        ]
        if len({b["pid"] for b in beats} & pool.alive()) >= need:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("workers did not come up")


async def _assert_exactly_once(
    stack: Stack, user: str, replies: dict[str, str]
) -> None:
    store = stack.store.for_user(stack.user_ids[user])
    changes, _, _ = await store.pull(0, 1000)
    assistant = [
        c["data"]
        for c in changes
        if c["entity"] == "messages" and c["data"]["role"] == str(Role.ASSISTANT)
    ]
    assert len(assistant) == len(replies)
    for message in assistant:
        assert message["status"] == str(Status.COMPLETE)
        assert message["content"] == replies[message["id"]]


@pytest.mark.slow
async def test_kill_9_a_worker_mid_reply_again_and_again(
    gateway_only: Stack, pool: ProcessPool, slow_fake: FakeOpenAI
) -> None:
    stack = gateway_only
    redis = stack.gateway.gateway.redis  # type: ignore[union-attr]
    for _ in range(3):  # a spare warms up while the others serve
        pool.start()
    laptop = await stack.device("alice")
    phone = await stack.device("alice")
    finals: dict[str, str] = {}
    jobs: list[str] = []
    attempts: list[int] = []
    for trial in range(TRIALS):
        await _live_workers(redis, pool, 2)
        accepted = await laptop.say(f"trial {trial}")
        jobs.append(accepted.job_id)
        await laptop.wait_for(
            lambda a=accepted: (
                laptop.replies.get(a.job_id) and laptop.replies[a.job_id].chunks
            )
        )
        owner = (await redis.hget(keys.job_info(accepted.job_id), "owner")).decode()
        pool.kill(int(owner.split(":")[1]))
        pool.start()
        reply = await laptop.finished(accepted.job_id)
        assert reply.error is None and reply.done is not None, reply
        assert reply.restarts >= 1 and reply.attempt >= 2
        assert reply.text == REPLY == reply.done.message["content"]
        finals[accepted.reply_id] = reply.text
        attempts.append(reply.attempt)
    for job_id in jobs:
        seen = await phone.finished(job_id)
        assert seen.text == REPLY and seen.done is not None
    await _assert_exactly_once(stack, "alice", finals)
    # one model call per attempt; a kill costs one extra attempt (rarely two, when a
    # loaded machine stalls a worker's event loop past its lease)
    assert len(slow_fake.requests) == sum(attempts)
    assert max(attempts) <= crash_settings_max_attempts(stack)
    assert await redis.xlen(keys.DLQ) == 0
    assert await redis.zcard(keys.INFLIGHT) == 0
    await laptop.close()
    await phone.close()


@pytest.mark.slow
async def test_kill_9_the_gateway_mid_reply(
    crash_settings: ServerSettings, pool: ProcessPool, slow_fake: FakeOpenAI
) -> None:
    port = free_port()
    stack = await start_stack(
        dataclasses.replace(crash_settings, port=free_port()), workers=0
    )
    try:
        url = f"ws://127.0.0.1:{port}"
        pool.start()
        finals: dict[str, str] = {}
        for trial in range(3):
            gateway = pool.start("gateway", GRIZZ_SERVER_PORT=str(port))
            device = Device(url, stack.tokens["alice"])
            await _connect_retrying(device)
            accepted = await device.say(f"gateway trial {trial}")
            await device.wait_for(
                lambda a=accepted, d=device: d.replies.get(a.job_id, _NONE).chunks
            )
            pool.kill(gateway)
            await device.wait_for(lambda d=device: d.closed is not None)
            replacement = pool.start("gateway", GRIZZ_SERVER_PORT=str(port))
            await _connect_retrying(device, reconnect=True)
            await device.resume(accepted.job_id)
            reply = await device.finished(accepted.job_id)
            assert reply.done is not None and reply.text == REPLY
            finals[accepted.reply_id] = reply.text
            await device.close()
            pool.kill(replacement)
        await _assert_exactly_once(stack, "alice", finals)
    finally:
        await stop_stack(stack)


def crash_settings_max_attempts(stack: Stack) -> int:
    return stack.settings.max_attempts


async def _connect_retrying(device: Device, *, reconnect: bool = False) -> None:
    for _ in range(100):
        try:
            await (device.reconnect() if reconnect else device.connect())
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise AssertionError("gateway did not come back")


async def test_client_drops_mid_stream_and_resumes(
    gateway_only: Stack, pool: ProcessPool
) -> None:
    pool.start()
    device = await gateway_only.device("alice")
    accepted = await device.say("tell me a story")
    await device.wait_for(
        lambda: len(device.replies.get(accepted.job_id, _NONE).chunks) >= 3
    )
    await device.close()
    await asyncio.sleep(0.2)  # the reply keeps streaming while the device is away
    await device.reconnect()
    await device.resume(accepted.job_id)
    reply = await device.finished(accepted.job_id)
    assert reply.text == REPLY and reply.done is not None
    assert "".join(reply.chunks) == REPLY  # nothing lost, nothing repeated
    await device.close()


@pytest.mark.slow
async def test_redis_restart_mid_reply(
    crash_settings: ServerSettings,
    slow_fake: FakeOpenAI,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in provider_env_vars(slow_fake).items():
        monkeypatch.setenv(name, value)
    redis_proc = RedisProcess(tmp_path / "redis", persist=True).start()
    settings = dataclasses.replace(crash_settings, redis_url=redis_proc.url)
    stack = await start_stack(settings, workers=1)
    try:
        device = await stack.device("alice")
        accepted = await device.say("hello across a restart")
        await device.wait_for(
            lambda: (
                device.replies.get(accepted.job_id)
                and device.replies[accepted.job_id].chunks
            )
        )
        redis_proc.stop()
        await asyncio.sleep(0.3)
        redis_proc.start()
        reply = await device.finished(accepted.job_id, timeout=30)
        assert reply.done is not None and reply.text == REPLY
        await _assert_exactly_once(stack, "alice", {accepted.reply_id: REPLY})
        # live events flow again: the hub re-subscribed after the restart
        phone = await stack.device("alice")
        await phone.wait_for(lambda: phone.frame(p.Welcome))
        second = await device.say("and after it?")
        seen = await phone.finished(second.job_id, timeout=30)
        assert seen.text == REPLY
        await device.close()
        await phone.close()
    finally:
        await stop_stack(stack)
        redis_proc.stop()


async def test_sigterm_lets_a_busy_worker_finish_its_reply(
    gateway_only: Stack, pool: ProcessPool
) -> None:
    import signal

    worker = pool.start()
    device = await gateway_only.device("alice")
    accepted = await device.say("finish what you started")
    await device.wait_for(lambda: device.replies.get(accepted.job_id, _NONE).chunks)
    os.kill(worker, signal.SIGTERM)
    reply = await device.finished(accepted.job_id)
    assert reply.done is not None and reply.text == REPLY
    assert reply.restarts == 0  # finished by the same attempt, within the grace period
    pool.procs[worker].join(15)
    assert pool.procs[worker].exitcode == 0
