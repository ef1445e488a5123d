"""The operators' side of the job queue: dead letters, requeue, queue figures.

Used by `grizz-server dlq` and `grizz-server check`; never on a hot path.

Must not import: websockets, the store, the core.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
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

    async def status(self) -> QueueStatus:
        """Count unfinished, pending, delayed and dead jobs.

        `pending` is 0 while the workers' group does not exist yet.
        """
        depth = await self.redis.zcard(keys.INFLIGHT)
        delayed = await self.redis.zcard(keys.DELAYED)
        dead = await self.redis.xlen(keys.DLQ)
        pending = 0
        with contextlib.suppress(RedisError):
            pending = int((await self.redis.xpending(keys.JOBS, keys.GROUP))["pending"])
        return QueueStatus(depth, pending, delayed, dead)
