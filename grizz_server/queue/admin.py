"""The operators' side of the job queue: dead letters, requeue, queue figures.

Used by `grizz-server dlq`, `grizz-server check` and the gateway's /metrics
(`status()` is the one place queue figures and live workers are counted);
never on a hot path.

Must not import: websockets, the store, the core.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from grizz_server import keys
from grizz_server.queue.jobs import JobState, as_text
from grizz_server.queue.pipeline import ScriptPipeline
from grizz_server.settings import ServerSettings


@dataclass(frozen=True)
class QueueStatus:
    """How many jobs are where, as `status` counted them."""

    depth: int
    """Unfinished jobs (queued, running or waiting to retry)."""
    pending: int
    """Entries read by a worker and not yet acknowledged."""
    delayed: int
    """Jobs waiting out a retry's backoff."""
    dead: int
    """Dead letters."""
    backlog: int = 0
    """Entries in the jobs stream (trimmed to about `jobs_maxlen`)."""
    live_workers: int = 0
    """Workers whose heartbeat key has more than one heartbeat of TTL left."""
    stale_workers: int = 0
    """Workers that beat within the past hour but are not live now."""
    workers: dict[str, dict[str, float]] = field(default_factory=dict)
    """What each live worker's last heartbeat said (pid, jobs, rss, cpu_s)."""


STALE_WINDOW_MS = 3_600_000
"""A dead worker is reported as stale for an hour after its last heartbeat."""


class QueueAdmin:
    """What the CLI and the health check ask of the queue."""

    def __init__(self, pipeline: ScriptPipeline, settings: ServerSettings) -> None:
        self.scripts = pipeline
        """The process's script pipeline, shared with its other queue roles."""
        self.redis: Redis = pipeline.redis
        self.settings = settings

    async def dead_letters(self, limit: int = 100) -> list[dict[str, str]]:
        """The newest dead letters first: id, job, user, attempts, code, reason."""
        entries = cast(
            "list[tuple[bytes, dict[bytes, bytes]]]",
            await self.redis.xrevrange(keys.DLQ, count=limit),
        )
        return [
            {
                "id": as_text(entry_id),
                **{as_text(k): as_text(v) for k, v in fields.items()},
            }
            for entry_id, fields in entries
        ]

    async def requeue(self, job_id: str) -> tuple[str, dict[str, str]]:
        """Retry a dead-lettered job: ("queued", its record) or ("not_dead", {})."""
        info = {
            as_text(k): as_text(v)
            for k, v in (await self.redis.hgetall(keys.job_info(job_id))).items()
        }
        if info.get("state") != JobState.DEAD:
            return "not_dead", {}
        status, _ = await self.scripts.run(
            "REQUEUE",
            [
                keys.JOBS,
                keys.job_info(job_id),
                keys.INFLIGHT,
                keys.user_active(info["user"]),
                keys.DLQ,
                keys.job_out(job_id),
            ],
            [job_id, self.settings.jobs_maxlen],
        )
        return as_text(status), info

    async def purge(self, job_id: str = "") -> int:
        """Drop dead letters for good (all, or those of `job_id`); how many.

        Their job records go too, so `dlq retry` cannot bring them back.
        """
        entries = cast(
            "list[tuple[bytes, dict[bytes, bytes]]]",
            await self.redis.xrange(keys.DLQ),
        )
        dropped = 0
        for entry_id, fields in entries:
            job = as_text(fields.get(b"job", b""))
            if job_id and job != job_id:
                continue
            dropped += int(await self.redis.xdel(keys.DLQ, entry_id))
            if (
                job
                and as_text(await self.redis.hget(keys.job_info(job), "state") or b"")
                == JobState.DEAD
            ):
                await self.redis.delete(keys.job_info(job), keys.job_out(job))
        return dropped

    async def status(self, heartbeat_ms: int | None = None) -> QueueStatus:
        """Count unfinished, pending, delayed and dead jobs, and the workers.

        Workers come from the `grizz:workers` zset (no SCAN): one is live
        while its heartbeat key (TTL 3 heartbeats, refreshed every heartbeat)
        has more than one heartbeat of TTL left; a worker that beat within
        the past hour and is not live is stale. `heartbeat_ms` is the
        workers' (default: this process's setting). `pending` is 0 while the
        workers' group does not exist yet.
        """
        beat = heartbeat_ms or self.settings.heartbeat_ms
        now_ms = time.time() * 1000
        pipe = self.redis.pipeline(transaction=False)
        pipe.zcard(keys.INFLIGHT)
        pipe.zcard(keys.DELAYED)
        pipe.xlen(keys.DLQ)
        pipe.xlen(keys.JOBS)
        pipe.zrangebyscore(keys.WORKERS, now_ms - STALE_WINDOW_MS, "+inf")
        depth, delayed, dead, backlog, names = await pipe.execute()
        pending = 0
        with contextlib.suppress(RedisError):
            pending = int((await self.redis.xpending(keys.JOBS, keys.GROUP))["pending"])
        live = await self._live_workers([as_text(n) for n in names], beat)
        return QueueStatus(
            depth,
            pending,
            delayed,
            dead,
            backlog,
            len(live),
            len(names) - len(live),
            live,
        )

    async def _live_workers(
        self, names: list[str], heartbeat_ms: int
    ) -> dict[str, dict[str, float]]:
        if not names:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.pttl(keys.worker(name))
            pipe.get(keys.worker(name))
        replies = await pipe.execute()
        live: dict[str, dict[str, float]] = {}
        for name, ttl, info in zip(names, replies[::2], replies[1::2], strict=True):
            if ttl > heartbeat_ms:
                live[name] = _heartbeat(info)
        return live


def _heartbeat(raw: bytes | str | None) -> dict[str, float]:
    """A heartbeat's numbers (pid, jobs, rss, cpu_s); {} when unreadable."""
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        k: float(v)
        for k, v in data.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
