"""The gateway's side of the job queue: admit, withdraw, announce, look up jobs.

`submit` is one Lua script (`SUBMIT` in `scripts.py`) that checks a
duplicate, the queue's depth, the user's unfinished jobs and rate, and queues
the job with its message; its calls share the process's `ScriptPipeline`.

Must not import: websockets, the store, the core.
"""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

from grizz_server import keys
from grizz_server.queue.jobs import Admission, JobMessage, as_text, reply_id_for
from grizz_server.queue.pipeline import ScriptPipeline
from grizz_server.settings import ServerSettings


class JobAdmission:
    """What a gateway asks of the queue; one instance per process."""

    def __init__(self, pipeline: ScriptPipeline, settings: ServerSettings) -> None:
        self.scripts = pipeline
        """The process's script pipeline, shared with its other queue roles."""
        self.redis: Redis = pipeline.redis
        self.settings = settings

    async def submit(self, job: JobMessage) -> Admission:
        """Admit and queue the job answering `job`, idempotent by job id.

        One script checks a duplicate (`exists`, with the job's state), queue
        depth (`busy`), the user's unfinished jobs (`too_many`) and rate
        (`rate`, with `retry_after_ms`); `queued` means it is in the queue,
        carrying the message, from now on.
        """
        s = self.settings
        status, detail = await self.scripts.run(
            "SUBMIT",
            [
                keys.JOBS,
                keys.job_info(job.job_id),
                keys.INFLIGHT,
                keys.user_active(job.user_id),
                keys.user_rate(job.user_id),
            ],
            [
                job.job_id,
                s.max_queue_depth,
                s.max_active_per_user,
                s.rate_per_minute / 60_000,
                s.rate_burst,
                3_600_000,
                s.jobs_maxlen,
                job.user_id,
                job.message_id,
                reply_id_for(job.job_id),
                job.conversation_id,
                job.tz,
                job.day,
                job.zone,
                job.text,
            ],
        )
        status, detail = as_text(status), as_text(detail)
        if status == "rate":
            return Admission(status, retry_after_ms=int(detail))
        return Admission(status, state=detail)

    async def cancel(self, user_id: str, job_id: str) -> bool:
        """Withdraw a job whose message could not be stored (see `CANCEL`)."""
        return bool(
            await self.scripts.run(
                "CANCEL",
                [
                    keys.JOBS,
                    keys.job_info(job_id),
                    keys.lease(job_id),
                    keys.job_out(job_id),
                    keys.INFLIGHT,
                    keys.user_active(user_id),
                ],
                [keys.GROUP, job_id],
            )
        )

    async def announce(self, user_id: str, event: dict[str, Any]) -> None:
        """Publish a live event to every device of `user_id`, on every gateway."""
        await self.scripts.run(
            "ANNOUNCE", [keys.user_changes(user_id)], [json.dumps(event)]
        )

    async def job_owner(self, job_id: str) -> str | None:
        """The user a job belongs to, or None when there is no such job."""
        owner = await self.redis.hget(keys.job_info(job_id), "user")
        return as_text(owner) if owner is not None else None

    async def active_jobs(self, user_id: str) -> list[str]:
        """A user's queued or running jobs (those with a job record), oldest first."""
        ids = [
            as_text(j)
            for j in await self.redis.zrange(keys.user_active(user_id), 0, -1)
        ]
        if not ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.exists(keys.job_info(job_id))
        found = await pipe.execute()
        return [job_id for job_id, exists in zip(ids, found, strict=True) if exists]

    async def job_events(self, user_id: str) -> list[dict[str, Any]]:
        """`job` events for a user's unfinished jobs (to re-announce after a gap)."""
        events = []
        for job_id in await self.active_jobs(user_id):
            info = await self.redis.hgetall(keys.job_info(job_id))
            if info:
                events.append(
                    {
                        "kind": "job",
                        "job_id": job_id,
                        "message_id": as_text(info.get(b"message", b"")),
                        "reply_id": as_text(info.get(b"reply", b"")),
                        "conversation_id": as_text(info.get(b"conv", b"")),
                    }
                )
        return events

    # -- worker side --------------------------------------------------------
