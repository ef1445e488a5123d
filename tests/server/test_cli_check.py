"""`grizz-server check` on workers and dead letters, against a real Redis."""

from __future__ import annotations

import json
import time
from pathlib import Path

from redis.asyncio import Redis

from grizz_server import keys
from grizz_server.health import check
from grizz_server.settings import ServerSettings


async def _beat(redis: Redis, name: str, *, ago_ms: int, ttl_ms: int) -> None:
    """What a worker's heartbeat leaves behind, `ago_ms` after it was sent."""
    ts = int(time.time() * 1000) - ago_ms
    info = json.dumps({"pid": 1, "jobs": 0, "ts": ts})
    if ttl_ms > 0:
        await redis.set(keys.worker(name), info, px=ttl_ms)
    await redis.zadd(keys.WORKERS, {name: ts})


async def test_only_workers_with_a_recent_heartbeat_count(
    aredis: Redis, redis_url: str, grizz_home: Path
) -> None:
    settings = ServerSettings(redis_url=redis_url, heartbeat_ms=2_000)
    await _beat(aredis, "live", ago_ms=500, ttl_ms=5_500)
    await _beat(aredis, "killed-4s-ago", ago_ms=4_500, ttl_ms=1_500)  # key lingers
    await _beat(aredis, "killed-1m-ago", ago_ms=60_000, ttl_ms=0)  # key expired
    await _beat(aredis, "killed-2h-ago", ago_ms=7_200_000, ttl_ms=0)  # history

    report = await check(settings)
    workers = dict((name, (ok, d)) for name, ok, d in report.lines)["workers"]
    assert workers == (
        True,
        "1 alive, 2 stale (stopped sending heartbeats in the past hour)",
    )
    assert report.figures["live_workers"] == 1
    assert report.figures["stale_workers"] == 2

    await aredis.delete(keys.worker("live"))  # only stale ones: unhealthy
    report = await check(settings)
    workers = dict((name, (ok, d)) for name, ok, d in report.lines)["workers"]
    assert workers[0] is False and workers[1].startswith("0 alive, 3 stale")


async def test_dead_letter_hint_names_the_command(
    aredis: Redis, redis_url: str, grizz_home: Path
) -> None:
    await aredis.xadd(keys.DLQ, {"job": "j1", "reason": "boom"})
    report = await check(ServerSettings(redis_url=redis_url))
    lines = {name: detail for name, _, detail in report.lines}
    assert lines["dead letters"] == "1 (inspect with `grizz-server dlq list`)"
