"""One reader per gateway for every job output stream its devices follow.

A blocking `XREAD` holds a Redis connection for as long as it waits, so
following each job with its own blocking read costs one connection per
in-flight reply (redis-py's pool stops at 100). Instead one task runs one
`XREAD BLOCK` over all followed `grizz:job:{id}` keys plus this gateway's
wake-up stream; adding a job XADDs to the wake-up stream so the new key is
included at once. A device that resumes from an old entry first catches up
with paged `XRANGE` reads (waiting on its own outbox: backpressure), then
joins the shared reader from where it stopped.

Must not import: the store, the core, textual.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import RedisError

from grizz_server import keys
from grizz_server.aio import check_cancelled

log = logging.getLogger(__name__)
PAGE = 200
IDLE_CHECK_S = 5.0
TERMINAL = (b"done", b"error")

Deliver = Callable[[str, dict[bytes, bytes], bool], Awaitable[None]]
"""Called with (entry id, fields, live) for each entry, in order. While
catching up (`live` False) it may wait; from the shared reader it must not."""
Gone = Callable[[], Awaitable[None]]
"""Called when the job's stream no longer exists."""


@dataclass(eq=False)
class Follower:
    deliver: Deliver
    gone: Gone
    cursor: str
    live: bool = False
    """False while catching up on its own; True once the shared reader feeds it."""


@dataclass
class _Job:
    followers: set[Follower] = field(default_factory=set)
    last_seen: float = field(default_factory=time.monotonic)


def _after(a: str, b: str) -> bool:
    """True when entry id `a` comes after `b`."""

    def key(entry: str) -> tuple[int, int]:
        ms, _, seq = entry.partition("-")
        return int(ms), int(seq or 0)

    return key(a) > key(b)


class JobStreams:
    """Follow job output streams for many devices over two Redis connections."""

    def __init__(self, redis: Redis, block_ms: int) -> None:
        self.redis = redis
        self.block_ms = block_ms
        self.jobs: dict[str, _Job] = {}
        self.wake_key = f"{keys.PREFIX}:gateway:{uuid.uuid4().hex}:wake"
        self._wake_id = "0-0"
        self._task: asyncio.Task[None] | None = None
        self._catching_up: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        entry = await self.redis.xadd(
            self.wake_key, {"w": "0"}, maxlen=10, approximate=True
        )
        self._wake_id = entry.decode()
        await self.redis.expire(self.wake_key, 7 * 86_400)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        for task in list(self._catching_up):
            task.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(RedisError, OSError):
            await self.redis.delete(self.wake_key)

    def follow(
        self,
        job_id: str,
        after: str,
        deliver: Deliver,
        gone: Gone,
        *,
        fresh: bool = False,
    ) -> Follower:
        """Deliver job `job_id`'s entries after `after`, catching up first.

        `fresh`: the job is being queued right now, so its stream is empty and
        the follower joins the shared reader at once; the caller wakes the
        reader (the ENQUEUE script XADDs to `wake_key`).
        """
        follower = Follower(deliver, gone, after, live=fresh)
        self.jobs.setdefault(job_id, _Job()).followers.add(follower)
        if fresh:
            return follower
        task = asyncio.create_task(self._catch_up(job_id, follower))
        self._catching_up.add(task)
        task.add_done_callback(self._catching_up.discard)
        return follower

    def unfollow(self, job_id: str, follower: Follower) -> None:
        job = self.jobs.get(job_id)
        if job is not None:
            job.followers.discard(follower)
            if not job.followers:
                del self.jobs[job_id]

    async def _catch_up(self, job_id: str, follower: Follower) -> None:
        key = keys.job_out(job_id)
        try:
            while True:
                entries = await self.redis.xrange(
                    key,
                    f"({follower.cursor}" if follower.cursor != "0" else "-",
                    "+",
                    count=PAGE,
                )
                for entry_id, fields in entries:
                    follower.cursor = entry_id.decode()
                    await follower.deliver(follower.cursor, fields, False)
                    if fields.get(b"k") in TERMINAL:
                        self.unfollow(job_id, follower)
                        return
                if len(entries) < PAGE:
                    break
            follower.live = True
            await self._wake()
        except (RedisError, OSError):
            follower.live = True  # the shared reader retries from its cursor
        except Exception:
            log.exception("catch-up failed", extra={"job": job_id})
            self.unfollow(job_id, follower)

    async def _wake(self) -> None:
        await self.redis.xadd(self.wake_key, {"w": "1"}, maxlen=10, approximate=True)

    async def _run(self) -> None:
        while True:
            check_cancelled()
            try:
                await self._read_once()
                await self._check_idle()
            except (RedisError, OSError) as exc:
                log.warning("job stream reader: redis error", extra={"error": str(exc)})
                await asyncio.sleep(0.5)

    async def _read_once(self) -> None:
        streams: dict[str, str] = {self.wake_key: self._wake_id}
        for job_id, job in self.jobs.items():
            cursors = [f.cursor for f in job.followers if f.live]
            if cursors:
                streams[keys.job_out(job_id)] = min(cursors, key=_sort_key)
        reply = await self.redis.xread(streams, count=PAGE, block=self.block_ms)
        for key, entries in reply or []:
            name = key.decode()
            if name == self.wake_key:
                self._wake_id = entries[-1][0].decode()
                continue
            await self._dispatch(name.removeprefix(keys.job_out("")), entries)

    async def _dispatch(self, job_id: str, entries: list) -> None:  # type: ignore[type-arg]
        job = self.jobs.get(job_id)
        if job is None:
            return
        job.last_seen = time.monotonic()
        for entry_id, fields in entries:
            entry = entry_id.decode()
            for follower in list(job.followers):
                if follower.live and _after(entry, follower.cursor):
                    follower.cursor = entry
                    await follower.deliver(entry, fields, True)
            if fields.get(b"k") in TERMINAL:
                self.jobs.pop(job_id, None)
                return

    async def _check_idle(self) -> None:
        now = time.monotonic()
        for job_id, job in list(self.jobs.items()):
            if now - job.last_seen < IDLE_CHECK_S:
                continue
            job.last_seen = now
            if not await self.redis.exists(keys.job_out(job_id), keys.job_info(job_id)):
                self.jobs.pop(job_id, None)
                for follower in job.followers:
                    await follower.gone()


def _sort_key(entry: str) -> tuple[int, int]:
    ms, _, seq = entry.partition("-")
    return int(ms), int(seq or 0)
