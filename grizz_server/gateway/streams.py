"""One reader per gateway for every job output stream its devices follow.

Workers write each output entry of a job twice, in the same script: to the
job's own stream `grizz:job:{id}` (which catch-up and `resume` read) and to
the inbox stream of every gateway registered for the job's user
(`queue/scripts.py`, `emit`). So a gateway follows all its devices' jobs with
one blocking `XREAD` of its own inbox, whatever the number of jobs in flight;
an earlier version read every followed job's stream in one `XREAD`, and with
hundreds of replies streaming, packing and scanning those keys on every
wake-up was the gateway's largest cost.

Registration: the gateway adds itself to `grizz:user:{user}:gateways` (a
zset scored by expiry) when the first device of a user connects, before that
device can follow anything, renews every registration every
`REGISTRATION_S / 3`, and removes it when the user's last device leaves.
Every entry written after registration therefore reaches the inbox; entries
written before are in the job's stream.

Following a job: a device that starts from an old entry first catches up
with paged `XRANGE` reads of the job's stream (waiting on its own outbox:
backpressure) while inbox entries for that job are held back for it; then
the held entries after its cursor are delivered and it goes live. A job
being queued right now (`fresh`) has no entries yet and goes live at once.
Entries are delivered in order and at most once per follower (each follower
keeps the last entry id it delivered).

Self-healing: a followed job with no entries for `IDLE_CHECK_S` is read
from its stream after the follower's cursor (catches anything the inbox
missed: a Redis restart that lost the registrations, an inbox trimmed past
a stalled gateway) and dropped when its stream and record are gone.

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
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from grizz_server import keys
from grizz_server.aio import check_cancelled
from grizz_server.queue.scripts import INBOX_MAXLEN, INBOX_TTL_MS

log = logging.getLogger(__name__)
PAGE = 200
IDLE_CHECK_S = 5.0
REGISTRATION_S = 60.0
"""How long a gateway's registration for a user lives without renewal."""
TERMINAL = (b"done", b"error")

Deliver = Callable[[str, dict[bytes, bytes], bool], Awaitable[None]]
"""Called with (entry id, fields, live) for each entry, in order. While
catching up (`live` False) it may wait; from the shared reader it must not."""
Gone = Callable[[], Awaitable[None]]
"""Called when the job's stream no longer exists."""
Entry = tuple[str, dict[bytes, bytes]]


@dataclass(eq=False)
class Follower:
    deliver: Deliver
    gone: Gone
    cursor: str
    live: bool = False
    """False while catching up on its own; True once the shared reader feeds it."""
    held: list[Entry] = field(default_factory=list)
    """Inbox entries that arrived while catching up."""


@dataclass
class _Job:
    followers: set[Follower] = field(default_factory=set)
    last_seen: float = field(default_factory=time.monotonic)


def _sort_key(entry: str) -> tuple[int, int]:
    ms, _, seq = entry.partition("-")
    return int(ms), int(seq or 0)


def entry_after(a: str, b: str) -> bool:
    """True when entry id `a` comes after `b`."""
    return _sort_key(a) > _sort_key(b)


def is_terminal(fields: dict[bytes, bytes]) -> bool:
    """True for the entry that ends a job (`done` or `error`)."""
    return fields.get(b"k") in TERMINAL


class JobStreams:
    """Follow job output streams for many devices through one inbox stream."""

    def __init__(self, redis: Redis, block_ms: int) -> None:
        self.redis = redis
        self.block_ms = block_ms
        self.jobs: dict[str, _Job] = {}
        self.gateway_id = uuid.uuid4().hex
        self.inbox = keys.gateway_inbox(self.gateway_id)
        self.users: dict[str, int] = {}
        """User id → devices of that user on this gateway (registered users)."""
        self._inbox_id = "$"
        self._tasks: list[asyncio.Task[None]] = []
        self._catching_up: set[asyncio.Task[None]] = set()
        self._idle_checked = 0.0

    async def start(self) -> None:
        # The reader keeps the last inbox id it saw (XREAD from "$" would miss
        # entries written between two reads) and starts from a marker entry:
        # ids come from Redis's clock, not this host's.
        marker = await self.redis.xadd(
            self.inbox, {"m": "start"}, maxlen=INBOX_MAXLEN, approximate=True
        )
        self._inbox_id = marker.decode() if isinstance(marker, bytes) else marker
        await self.redis.pexpire(self.inbox, INBOX_TTL_MS)
        self._tasks = [
            asyncio.create_task(self._run()),
            asyncio.create_task(self._renew()),
        ]

    async def stop(self) -> None:
        for task in [*self._catching_up, *self._tasks]:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(RedisError, OSError):
            pipe = self.redis.pipeline(transaction=False)
            for user in self.users:
                pipe.zrem(keys.user_gateways(user), self.gateway_id)
            pipe.delete(self.inbox)
            await pipe.execute()

    # -- registration -----------------------------------------------------------

    async def add_user(self, user_id: str) -> None:
        """A device of `user_id` connected: make sure its jobs reach the inbox.

        Returns once registered (or, when Redis is unreachable, after trying:
        the idle check and the renewal recover what that misses)."""
        count = self.users.get(user_id, 0)
        self.users[user_id] = count + 1
        if count == 0:
            with contextlib.suppress(RedisError, OSError):
                await self._register([user_id])

    async def remove_user(self, user_id: str) -> None:
        count = self.users.get(user_id, 0) - 1
        if count > 0:
            self.users[user_id] = count
            return
        self.users.pop(user_id, None)
        with contextlib.suppress(RedisError, OSError):
            await self.redis.zrem(keys.user_gateways(user_id), self.gateway_id)

    async def register_again(self, users: list[str]) -> None:
        """Renew these users' registrations now (after Redis came back)."""
        users = [user for user in users if user in self.users]
        if users:
            await self._register(users)

    async def _register(self, users: list[str]) -> None:
        # scores are on Redis's clock, which the scripts compare them with
        seconds, micros = await self.redis.time()
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        expires = now_ms + int(REGISTRATION_S * 1000)
        pipe = self.redis.pipeline(transaction=False)
        for user in users:
            key = keys.user_gateways(user)
            pipe.zadd(key, {self.gateway_id: expires})
            pipe.zremrangebyscore(key, "-inf", now_ms)  # gateways that died
            pipe.pexpire(key, int(REGISTRATION_S * 2000))
        pipe.pexpire(self.inbox, INBOX_TTL_MS)
        await pipe.execute()

    async def _renew(self) -> None:
        while True:
            check_cancelled()
            await asyncio.sleep(REGISTRATION_S / 3)
            users = list(self.users)
            try:
                for i in range(0, len(users), 1000):
                    await self._register(users[i : i + 1000])
                if not users:
                    await self.redis.pexpire(self.inbox, INBOX_TTL_MS)
            except (RedisError, OSError) as exc:
                log.warning("could not renew registrations", extra={"error": str(exc)})

    # -- following --------------------------------------------------------------

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

        `fresh`: the job is being queued right now by this gateway for a
        registered user, so every entry it will have reaches the inbox and
        the follower goes live at once.
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
        try:
            if await self._read_stream(job_id, follower):
                return
            # entries held back meanwhile: deliver those after the cursor
            while follower.held:
                held, follower.held = follower.held, []
                for entry, fields in held:
                    if await self._deliver(job_id, follower, entry, fields, False):
                        return
            follower.live = True
        except (RedisError, OSError):
            follower.live = True  # the idle check reads what it missed
        except Exception:
            log.exception("catch-up failed", extra={"job": job_id})
            self.unfollow(job_id, follower)

    async def _read_stream(self, job_id: str, follower: Follower) -> bool:
        """Deliver the job's stream after the follower's cursor; True at its end."""
        key = keys.job_out(job_id)
        while True:
            entries = cast(
                "list[tuple[bytes, dict[bytes, bytes]]]",
                await self.redis.xrange(
                    key,
                    f"({follower.cursor}" if follower.cursor != "0" else "-",
                    "+",
                    count=PAGE,
                ),
            )
            for entry_id, fields in entries:
                if await self._deliver(
                    job_id, follower, entry_id.decode(), fields, follower.live
                ):
                    return True
            if len(entries) < PAGE:
                return False

    async def _deliver(
        self,
        job_id: str,
        follower: Follower,
        entry: str,
        fields: dict[bytes, bytes],
        live: bool,
    ) -> bool:
        """Deliver one entry if it is new to the follower; True if it ended the job."""
        if not entry_after(entry, follower.cursor):
            return False
        follower.cursor = entry
        await follower.deliver(entry, fields, live)
        if fields.get(b"k") in TERMINAL:
            self.unfollow(job_id, follower)
            return True
        return False

    async def last_entry(self, job_id: str) -> Entry | None:
        """The newest entry of job `job_id`'s output stream, if it has one."""
        entries = cast(
            "list[tuple[bytes, dict[bytes, bytes]]]",
            await self.redis.xrevrange(keys.job_out(job_id), "+", "-", count=1),
        )
        if not entries:
            return None
        entry_id, fields = entries[0]
        return entry_id.decode(), fields

    # -- the inbox reader -------------------------------------------------------

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
        reply = cast(
            "list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]] | None",
            await self.redis.xread(
                {self.inbox: self._inbox_id}, count=PAGE * 5, block=self.block_ms
            ),
        )
        for _key, entries in reply or []:
            self._inbox_id = entries[-1][0].decode()
            for _inbox_entry, fields in entries:
                job_id = fields.pop(b"j", b"").decode()
                entry = fields.pop(b"e", b"").decode()
                job = self.jobs.get(job_id)
                if job is None or not entry:
                    continue
                job.last_seen = time.monotonic()
                for follower in list(job.followers):
                    if follower.live:
                        await self._deliver(job_id, follower, entry, fields, True)
                    else:
                        follower.held.append((entry, fields))

    async def _check_idle(self) -> None:
        """Jobs quiet for `IDLE_CHECK_S`: drop the gone, read the rest's streams.

        Two pipelined round trips however many jobs are idle (a backlog of
        queued jobs is idle until a worker takes them). The scan over the
        followed jobs runs at most every tenth of `IDLE_CHECK_S`, not on every
        inbox read (with thousands of jobs in flight it was 3% of the gateway).
        """
        now = time.monotonic()
        if now - self._idle_checked < IDLE_CHECK_S / 10:
            return
        self._idle_checked = now
        idle = [
            (job_id, job)
            for job_id, job in self.jobs.items()
            if now - job.last_seen >= IDLE_CHECK_S
        ]
        if not idle:
            return
        pipe = self.redis.pipeline(transaction=False)
        for job_id, job in idle:
            job.last_seen = now
            pipe.exists(keys.job_out(job_id), keys.job_info(job_id))
        found = await pipe.execute()
        reading: list[tuple[str, list[Follower]]] = []
        pipe = self.redis.pipeline(transaction=False)
        for (job_id, job), exists in zip(idle, found, strict=True):
            if not exists:
                self.jobs.pop(job_id, None)
                for follower in job.followers:
                    await follower.gone()
                continue
            live = [f for f in job.followers if f.live]
            if live:
                start = min((f.cursor for f in live), key=_sort_key)
                pipe.xrange(
                    keys.job_out(job_id),
                    f"({start}" if start != "0" else "-",
                    "+",
                    count=PAGE,
                )
                reading.append((job_id, live))
        if reading:
            await self._heal(reading, await pipe.execute())

    async def _heal(
        self, reading: list[tuple[str, list[Follower]]], pages: list[list[Any]]
    ) -> None:
        """Deliver what the idle check read from job streams to their followers."""
        for (job_id, live), entries in zip(reading, pages, strict=True):
            for follower in live:
                for entry_id, fields in entries:
                    if await self._deliver(
                        job_id, follower, entry_id.decode(), fields, True
                    ):
                        break
                else:
                    if len(entries) == PAGE:  # more than a page behind
                        await self._read_stream(job_id, follower)
