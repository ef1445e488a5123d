"""Server test fixtures: a real redis-server per test session, flushed per test.

The Redis process is session-scoped (one per xdist worker: its own free port
and temporary directory, no persistence) and every test starts from an empty
database. Tests that restart Redis start their own persistent one instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import redis
from redis.asyncio import Redis

from grizz_server.queue.jobs import JobQueue
from grizz_server.redis_server import RedisProcess
from grizz_server.settings import ServerSettings


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
async def queue(aredis: Redis, fast_settings: ServerSettings) -> JobQueue:
    q = JobQueue(aredis, fast_settings, consumer="test-consumer")
    await q.ensure_group()
    return q
