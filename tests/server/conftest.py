"""Server test fixtures: a real redis-server per test session, flushed per test.

The Redis process is session-scoped (one per xdist worker: its own free port
and temporary directory, no persistence) and every test starts from an empty
database. Tests that restart Redis start their own persistent one instead.
The store fixtures (`store_url` on SQLite and PostgreSQL, `store`, …) live in
`conftest_store.py`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.asyncio import Redis

from grizz_server.gateway.server import RunningGateway
from grizz_server.queue.admission import JobAdmission
from grizz_server.queue.leases import JobLeases
from grizz_server.queue.pipeline import ScriptPipeline
from grizz_server.redis_server import RedisProcess
from grizz_server.settings import ServerSettings
from grizz_server.store import ServerStore
from tests.server.harness import Device


@pytest.fixture(scope="session")
def redis_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    proc = RedisProcess(tmp_path_factory.mktemp("redis"), persist=False).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def redis_url(redis_proc: RedisProcess) -> str:
    """URL of the session's Redis, emptied for this test."""
    client = redis.Redis.from_url(redis_proc.url)
    client.flushdb()
    client.close()
    return redis_proc.url


@pytest.fixture
async def aredis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def fast_settings() -> ServerSettings:
    """Short leases and backoffs so crash and retry tests run in seconds."""
    return ServerSettings(
        lease_ms=400,
        visibility_ms=700,
        backoff_ms=50,
        backoff_cap_ms=200,
        block_ms=100,
        heartbeat_ms=200,
        shutdown_grace_s=2.0,
    )


@pytest.fixture
def pipeline(aredis: Redis) -> ScriptPipeline:
    """One process's script pipeline, shared by its queue roles."""
    return ScriptPipeline(aredis)


@pytest.fixture
def admission(pipeline: ScriptPipeline, fast_settings: ServerSettings) -> JobAdmission:
    """The gateway's side of the queue."""
    return JobAdmission(pipeline, fast_settings)


@pytest.fixture
async def leases(pipeline: ScriptPipeline, fast_settings: ServerSettings) -> JobLeases:
    """A worker's side of the queue, sharing `admission`'s pipeline."""
    q = JobLeases(pipeline, fast_settings, consumer="test-consumer")
    await q.ensure_group()
    return q


# -- a whole server in this process: store, gateway, worker -------------------

from tests.server.conftest_store import (  # noqa: E402
    pg_database,
    pg_server,
    store,
    store_url,
    two_users,
)

__all__ = ["pg_database", "pg_server", "store", "store_url", "two_users"]


@dataclass
class Stack:
    """A running server: its URL, two users' tokens and the store behind it."""

    settings: ServerSettings
    store: ServerStore
    url: str
    tokens: dict[str, str]
    user_ids: dict[str, str]
    gateway: RunningGateway
    workers: list[asyncio.Task[None]]
    contexts: list[Any] = dataclasses.field(default_factory=list)
    worker_objects: list[Any] = dataclasses.field(default_factory=list)

    async def device(self, user: str = "alice", **kwargs: Any) -> Device:
        return await Device(self.url, self.tokens[user], **kwargs).connect()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'server.db'}"


@pytest.fixture
def server_settings(
    redis_url: str, fast_settings: ServerSettings, sqlite_url: str, tmp_path: Path
) -> ServerSettings:
    return dataclasses.replace(
        fast_settings,
        redis_url=redis_url,
        db_url=sqlite_url,
        port=0,
        log_dir=str(tmp_path / "logs"),
        rate_burst=50,
        rate_per_minute=600,
    )


async def start_stack(settings: ServerSettings, *, workers: int = 1) -> Stack:
    from grizz_server.settings import load_server_settings
    from grizz_server.worker.handlers import WorkerContext
    from grizz_server.worker.runner import Worker, consumer_name, make_worker_provider

    store = await ServerStore.open(settings.db_url)
    tokens, ids = {}, {}
    for name in ("alice", "bob"):
        user = await store.add_user(name)
        tokens[name], _ = await store.add_token(name, f"{name}-laptop")
        ids[name] = user.id
    gateway = await RunningGateway(settings).__aenter__()
    tasks, contexts, objects = [], [], []
    for _ in range(workers):
        # the provider from the environment (provider_env), as a worker
        # process reads it
        provider = make_worker_provider(load_server_settings())
        redis = Redis.from_url(settings.redis_url)
        ctx = WorkerContext(
            redis,
            JobLeases(ScriptPipeline(redis), settings, consumer_name()),
            store,
            provider,
            settings,
        )
        contexts.append(ctx)
        objects.append(Worker(ctx, settings))
        tasks.append(asyncio.create_task(objects[-1].run()))
    return Stack(
        settings,
        store,
        f"ws://127.0.0.1:{gateway.port}",
        tokens,
        ids,
        gateway,
        tasks,
        contexts,
        objects,
    )


def _dump_tasks() -> None:
    import sys

    for task in asyncio.all_tasks():
        coro: Any = task.get_coro()
        chain = []
        while coro is not None:
            frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
            if frame is not None:
                chain.append(
                    f"{frame.f_code.co_filename}:{frame.f_lineno} "
                    f"{frame.f_code.co_name}"
                )
            coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
        print("TASK", task.get_name(), " <- ".join(chain), file=sys.stderr)


async def stop_stack(stack: Stack) -> None:
    for worker in stack.worker_objects:
        worker.stop()
    if stack.workers:
        _, stuck = await asyncio.wait(stack.workers, timeout=10)
        if stuck:
            _dump_tasks()
    for ctx in stack.contexts:
        await ctx.provider.aclose()
        await ctx.redis.aclose()
    await stack.gateway.__aexit__(None, None, None)
    await stack.store.close()


@pytest.fixture
async def stack(
    server_settings: ServerSettings, provider_env: Any
) -> AsyncIterator[Stack]:
    """Gateway and one worker in this process, on SQLite, against the fake provider."""
    running = await start_stack(server_settings)
    try:
        yield running
    finally:
        await stop_stack(running)


@pytest.fixture
async def any_db_stack(
    server_settings: ServerSettings, store_url: str, provider_env: Any
) -> AsyncIterator[Stack]:
    """Like `stack`, once on SQLite and once on PostgreSQL."""
    running = await start_stack(dataclasses.replace(server_settings, db_url=store_url))
    try:
        yield running
    finally:
        await stop_stack(running)
