"""The job queue over Redis Streams: ids, admission, delivery, leases, retries.

Delivery is at-least-once: a job's entry stays in the consumer group's pending
list until `finish` or `fail` acknowledges it, a dead worker's entries are
reclaimed with XAUTOCLAIM once idle past the visibility timeout, and a live
worker keeps its entry fresh (and its lease alive) with `extend`. Everything
that decides and writes is one Lua script (`queue/scripts.py`); this module
only names keys, passes arguments and turns replies into Python values.

Must not import: websockets, the store, the core.
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, ResponseError

from grizz_server import keys
from grizz_server.queue import scripts
from grizz_server.settings import ServerSettings

NS_JOB = uuid.UUID("6f1d4f8e-3a57-4d0e-9b8a-4b1f0c6a9e21")
NS_REPLY = uuid.UUID("0b8e2f39-51c4-4c41-8f3e-2d9a7e5c1b64")
INFO_TTL_S = 86_400
"""How long a finished job's record stays (a re-sent message maps back to it)."""


def connect_redis(url: str, *, max_connections: int = 128) -> Redis:
    """A client whose pool waits for a free connection instead of failing.

    redis-py's default pool raises "Too many connections" past 100; a gateway
    with hundreds of devices sending at once must queue for a connection, not
    answer `unavailable`.
    """
    pool = BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=30, health_check_interval=10
    )
    return Redis.from_pool(pool)  # the client owns the pool: aclose() closes it


@functools.lru_cache(maxsize=4096)
def job_id_for(user_id: str, message_id: str) -> str:
    """The job answering `message_id`: the same message always maps to one job."""
    return str(uuid.uuid5(NS_JOB, f"{user_id}:{message_id}"))


@functools.lru_cache(maxsize=4096)  # uuid5 costs ~5 us; a send asks three times
def reply_id_for(job_id: str) -> str:
    """The reply row's id: every attempt of a job writes the same row."""
    return str(uuid.uuid5(NS_REPLY, job_id))


Entry = tuple[str, str, str]
"""One output-stream entry a worker writes: (kind, text, extra)."""


@dataclass(frozen=True)
class _Call:
    """One script call waiting for its turn's pipeline."""

    script: AsyncScript
    keys: list[str]
    args: list[Any]
    future: asyncio.Future[Any]


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    DONE = "done"
    DEAD = "dead"


@dataclass(frozen=True)
class Admission:
    """Result of `submit`: `status` is queued, exists, busy, too_many or rate."""

    status: str
    state: str = ""
    retry_after_ms: int = 0


@dataclass(frozen=True)
class Delivery:
    """One job entry read from `grizz:jobs` by a worker."""

    entry: str
    job_id: str
    user_id: str


@dataclass(frozen=True)
class JobMessage:
    """A user message to answer, as the gateway queues it.

    The job record carries the whole message, so a worker starts on it at
    once and stores it itself if the gateway's own write has not landed (or
    never will: the gateway died in between).
    """

    job_id: str
    user_id: str
    message_id: str
    conversation_id: str
    day: str
    zone: str
    """The day's time zone name, for the conversation row."""
    tz: str
    """The zone the device sent ('' for the server's), for the reply's clock."""
    text: str


@dataclass(frozen=True)
class Attempt:
    """A job a worker now owns: write only with `token` (the fencing token)."""

    delivery: Delivery
    attempt: int
    token: str
    message_id: str
    reply_id: str
    conversation_id: str
    tz: str
    day: str = ""
    zone: str = ""
    text: str = ""
    """The message's text, carried in the job ('' in a job queued before
    messages travelled with jobs: then read it from the store)."""


class JobQueue:
    """Every queue operation; one instance per process, shared by its tasks."""

    def __init__(
        self, redis: Redis, settings: ServerSettings, consumer: str = ""
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.consumer = consumer
        self._renewed: dict[str, float] = {}
        """Fencing token → monotonic time its lease was last set by this process."""
        self._scripts = {
            name: redis.register_script(getattr(scripts, name))
            for name in (
                "SUBMIT",
                "CANCEL",
                "ANNOUNCE",
                "BEGIN",
                "APPEND",
                "CHECK",
                "EXTEND",
                "FINISH",
                "FAIL",
                "PROMOTE",
                "RELEASE",
                "REQUEUE",
            )
        }
        self._batch: list[_Call] = []
        self._flushes: set[asyncio.Task[None]] = set()

    # -- script calls, batched per event-loop turn ----------------------------

    async def _run(self, name: str, keys_: list[str], args: list[Any]) -> Any:
        """Run script `name`; its reply, or raise what Redis answered."""
        return await self._call(name, keys_, args)

    def _call(
        self, name: str, keys_: list[str], args: list[Any]
    ) -> asyncio.Future[Any]:
        """Queue a script call for this turn's pipeline; a future of its reply.

        Every call made during one turn of the event loop (a worker appending
        chunks for a hundred replies, a gateway admitting a burst of messages)
        goes to Redis in one pipelined write at the start of the next turn.
        redis-py spends ~110 us of CPU on a lone EVALSHA and ~20-40 us per
        command in a pipeline of 5-20 (measured here); a lone call costs one
        extra trip round the loop, microseconds.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._batch:
            loop.call_soon(self._send_batch)
        self._batch.append(_Call(self._scripts[name], keys_, args, future))
        return future

    def _send_batch(self) -> None:
        batch, self._batch = self._batch, []
        task = asyncio.ensure_future(self._flush(batch))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush(self, batch: list[_Call]) -> None:
        calls = [c for c in batch if not c.future.done()]  # skip the cancelled
        if not calls:
            return
        try:
            replies = await self._pipeline(calls)
        except BaseException as exc:
            for call in calls:
                if not call.future.done():
                    if isinstance(exc, asyncio.CancelledError):
                        call.future.cancel()
                    else:
                        call.future.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        for call, reply in zip(calls, replies, strict=True):
            if call.future.done():
                continue
            if isinstance(reply, Exception):
                call.future.set_exception(reply)
            else:
                call.future.set_result(reply)

    async def _pipeline(self, calls: Sequence[_Call]) -> list[Any]:
        """Run the calls in one round trip; a failed call's reply is its error.

        Scripts are called by hash, so a Redis that lost its script cache (a
        restart) answers NOSCRIPT: those scripts are loaded and the calls,
        which did not run, are sent again. A lost connection raises.
        """
        if len(calls) == 1:
            call = calls[0]
            try:  # AsyncScript reloads the script itself on NOSCRIPT
                return [await call.script(keys=call.keys, args=call.args)]
            except ResponseError as exc:
                return [exc]
        replies: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        for _ in range(2):
            pipe = self.redis.pipeline(transaction=False)
            for i in todo:
                call = calls[i]
                pipe.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
            results = await pipe.execute(raise_on_error=False)
            missing = []
            for i, result in zip(todo, results, strict=True):
                if isinstance(result, NoScriptError):
                    missing.append(i)
                else:
                    replies[i] = result
            if not missing:
                return replies
            for script in {
                id(calls[i].script): calls[i].script for i in missing
            }.values():
                await self.redis.script_load(script.script)
            todo = missing
        for i in todo:
            replies[i] = NoScriptError("the script could not be loaded")
        return replies

    async def ensure_group(self) -> None:
        """Create the stream and the workers' group (id 0: no entry is skipped)."""
        try:
            await self.redis.xgroup_create(keys.JOBS, keys.GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    # -- gateway side -------------------------------------------------------

    async def submit(self, job: JobMessage) -> Admission:
        """Admit and queue the job answering `job`, idempotent by job id.

        One script checks a duplicate (`exists`, with the job's state), queue
        depth (`busy`), the user's unfinished jobs (`too_many`) and rate
        (`rate`, with `retry_after_ms`); `queued` means it is in the queue,
        carrying the message, from now on.
        """
        s = self.settings
        status, detail = await self._run(
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
        status, detail = _text(status), _text(detail)
        if status == "rate":
            return Admission(status, retry_after_ms=int(detail))
        return Admission(status, state=detail)

    async def cancel(self, user_id: str, job_id: str) -> bool:
        """Withdraw a job whose message could not be stored (see `CANCEL`)."""
        return bool(
            await self._run(
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
        await self._run("ANNOUNCE", [keys.user_changes(user_id)], [json.dumps(event)])

    async def job_owner(self, job_id: str) -> str | None:
        """The user a job belongs to, or None when there is no such job."""
        owner = await self.redis.hget(keys.job_info(job_id), "user")
        return _text(owner) if owner is not None else None

    async def active_jobs(self, user_id: str) -> list[str]:
        """A user's queued or running jobs (those with a job record), oldest first."""
        ids = [
            _text(j) for j in await self.redis.zrange(keys.user_active(user_id), 0, -1)
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
                        "message_id": _text(info.get(b"message", b"")),
                        "reply_id": _text(info.get(b"reply", b"")),
                        "conversation_id": _text(info.get(b"conv", b"")),
                    }
                )
        return events

    # -- worker side --------------------------------------------------------

    async def read(self, count: int, block_ms: int) -> list[Delivery]:
        """New entries for this consumer (XREADGROUP `>`), blocking up to `block_ms`."""
        reply = await self.redis.xreadgroup(
            keys.GROUP, self.consumer, {keys.JOBS: ">"}, count=count, block=block_ms
        )
        return [d for _, entries in reply or [] for d in _deliveries(entries)]

    async def reclaim(self, count: int) -> list[Delivery]:
        """Take over entries idle past the visibility timeout (follows the cursor)."""
        found: list[Delivery] = []
        cursor = "0-0"
        for _ in range(10):
            reply = await self.redis.xautoclaim(
                keys.JOBS,
                keys.GROUP,
                self.consumer,
                self.settings.visibility_ms,
                start_id=cursor,
                count=count - len(found),
            )
            cursor = _text(reply[0])
            found.extend(_deliveries(reply[1]))
            if cursor == "0-0" or len(found) >= count:
                break
        return found

    async def begin(self, delivery: Delivery) -> Attempt | str:
        """Start an attempt: an `Attempt`, or why not (gone, stale, leased, dead)."""
        return (await self.begin_many([delivery]))[0]

    async def begin_many(self, deliveries: Sequence[Delivery]) -> list[Attempt | str]:
        """`begin` for a batch read in one go, in one pipelined round trip.

        Each item is an `Attempt` or why not. A script error on one job
        leaves that one out ("error"): its entry stays pending for reclaim.
        """
        s = self.settings
        tokens = [secrets.token_hex(16) for _ in deliveries]
        started = time.monotonic()
        replies = await self._run_many(
            "BEGIN",
            [
                (
                    self._job_keys(d),
                    [
                        keys.GROUP,
                        d.entry,
                        token,
                        s.lease_ms,
                        self.consumer,
                        s.max_attempts,
                        s.max_deliveries,
                        s.out_ttl_s,
                        INFO_TTL_S,
                        s.dlq_maxlen,
                        d.job_id,
                    ],
                )
                for d, token in zip(deliveries, tokens, strict=True)
            ],
        )
        out: list[Attempt | str] = []
        for delivery, token, reply in zip(deliveries, tokens, replies, strict=True):
            if isinstance(reply, Exception):
                out.append("error")
                continue
            status = _text(reply[0])
            if status != "run":
                out.append(status)
                continue
            self._renewed[token] = started
            attempt, _user, message, reply_id, conv, tz, day, zone, text = (
                _text(v or b"") for v in reply[1:10]
            )
            out.append(
                Attempt(
                    delivery,
                    int(attempt),
                    token,
                    message,
                    reply_id,
                    conv,
                    tz,
                    day,
                    zone,
                    text,
                )
            )
        return out

    async def _run_many(
        self, name: str, calls: Sequence[tuple[list[str], list[Any]]]
    ) -> list[Any]:
        """Run one script for many key/argument sets in one pipelined round trip.

        Replies come back in order; a call Redis refused has its error as its
        reply. A lost connection raises.
        """
        futures = [self._call(name, keys_, args) for keys_, args in calls]
        replies = await asyncio.gather(*futures, return_exceptions=True)
        for reply in replies:
            if isinstance(reply, BaseException) and not isinstance(
                reply, ResponseError
            ):
                raise reply
        return replies

    def _job_keys(self, d: Delivery) -> list[str]:
        return [
            keys.JOBS,
            keys.job_info(d.job_id),
            keys.lease(d.job_id),
            keys.job_out(d.job_id),
            keys.DLQ,
            keys.INFLIGHT,
            keys.user_active(d.user_id),
            keys.user_gateways(d.user_id),
        ]

    async def append(self, a: Attempt, entries: Sequence[Entry]) -> bool:
        """Add entries, in order, to the job's output stream; False when fenced off."""
        d = a.delivery
        done = await self._run(
            "APPEND",
            [
                keys.job_info(d.job_id),
                keys.job_out(d.job_id),
                keys.user_gateways(d.user_id),
            ],
            [a.token, a.attempt, d.job_id, *_flatten(entries)],
        )
        return done is not None

    def forget(self, a: Attempt) -> None:
        """Drop what this process remembers about an attempt that ended."""
        self._renewed.pop(a.token, None)

    async def still_owner(self, a: Attempt) -> bool:
        """True while no other attempt has taken the job over.

        No other worker can `begin` the job while this attempt's lease key
        lives (BEGIN refuses a job leased to another token), and the lease was
        set for `lease_ms` at the last `begin`/`extend`; within half of that
        the answer is known without asking Redis.
        """
        renewed = self._renewed.get(a.token)
        if (
            renewed is not None
            and time.monotonic() - renewed < self.settings.lease_ms / 2000
        ):
            return True
        return bool(
            await self._run("CHECK", [keys.job_info(a.delivery.job_id)], [a.token])
        )

    async def extend(self, a: Attempt) -> bool:
        """Renew the lease and reset the entry's idle time; False when fenced off."""
        job = a.delivery.job_id
        started = time.monotonic()
        owner = bool(
            await self._run(
                "EXTEND",
                [keys.job_info(job), keys.lease(job), keys.JOBS],
                [
                    a.token,
                    self.settings.lease_ms,
                    keys.GROUP,
                    self.consumer,
                    a.delivery.entry,
                ],
            )
        )
        if owner:
            self._renewed[a.token] = started  # the lease runs from after `started`
        else:
            self._renewed.pop(a.token, None)
        return owner

    async def finish(
        self,
        a: Attempt,
        message: dict[str, Any],
        *,
        entries: Sequence[Entry] = (),
        event: dict[str, Any] | None = None,
    ) -> bool:
        """Append the last `entries` and `done`, ack and close the job, and
        publish `event` to the user's devices, atomically; False when fenced off."""
        self._renewed.pop(a.token, None)
        d = a.delivery
        return bool(
            await self._run(
                "FINISH",
                [
                    keys.JOBS,
                    keys.job_info(d.job_id),
                    keys.lease(d.job_id),
                    keys.job_out(d.job_id),
                    keys.INFLIGHT,
                    keys.user_active(d.user_id),
                    keys.user_changes(d.user_id),
                    keys.user_gateways(d.user_id),
                ],
                [
                    a.token,
                    keys.GROUP,
                    d.entry,
                    d.job_id,
                    json.dumps(message),
                    self.settings.out_ttl_s,
                    INFO_TTL_S,
                    json.dumps(event) if event else "",
                    *_flatten(entries),
                ],
            )
        )

    async def fail(self, a: Attempt, *, code: str, reason: str, retryable: bool) -> str:
        """Retry with backoff or dead-letter, atomically: retry, dead or fenced."""
        self._renewed.pop(a.token, None)
        s = self.settings
        reply = await self._run(
            "FAIL",
            [*self._job_keys(a.delivery), keys.DELAYED],
            [
                a.token,
                keys.GROUP,
                a.delivery.entry,
                a.delivery.job_id,
                code,
                reason,
                "1" if retryable else "0",
                s.max_attempts,
                self.backoff_ms(a.attempt),
                s.out_ttl_s,
                INFO_TTL_S,
                s.dlq_maxlen,
            ],
        )
        return _text(reply[0])

    def backoff_ms(self, attempt: int) -> int:
        """Exponential backoff with jitter (half to all of base x 2^(n-1), capped)."""
        cap = min(
            self.settings.backoff_cap_ms, self.settings.backoff_ms * 2 ** (attempt - 1)
        )
        return random.randint(cap // 2, cap)

    async def release(self, a: Attempt) -> bool:
        """Hand a job back for immediate reclaim (shutdown); False when fenced off."""
        self._renewed.pop(a.token, None)
        job = a.delivery.job_id
        return bool(
            await self._run(
                "RELEASE",
                [keys.job_info(job), keys.lease(job), keys.JOBS],
                [a.token, keys.GROUP, self.consumer, a.delivery.entry],
            )
        )

    async def promote(self, limit: int = 100) -> int:
        """Move retries whose backoff has passed back into `grizz:jobs`."""
        return int(
            await self._run(
                "PROMOTE",
                [keys.DELAYED, keys.JOBS],
                [limit, self.settings.jobs_maxlen, keys.job_info("")],
            )
        )


async def dead_letters(redis: Redis, limit: int = 100) -> list[dict[str, str]]:
    """The newest dead letters first: id, job, user, attempts, code, reason."""
    entries = await redis.xrevrange(keys.DLQ, count=limit)
    return [
        {"id": _text(entry_id), **{_text(k): _text(v) for k, v in fields.items()}}
        for entry_id, fields in entries
    ]


async def requeue(queue: JobQueue, job_id: str) -> tuple[str, dict[str, str]]:
    """Retry a dead-lettered job: ("queued", its record) or ("not_dead", {})."""
    info = {
        _text(k): _text(v)
        for k, v in (await queue.redis.hgetall(keys.job_info(job_id))).items()
    }
    if info.get("state") != JobState.DEAD:
        return "not_dead", {}
    status, _ = await queue._run(
        "REQUEUE",
        [
            keys.JOBS,
            keys.job_info(job_id),
            keys.INFLIGHT,
            keys.user_active(info["user"]),
            keys.DLQ,
            keys.job_out(job_id),
        ],
        [job_id, queue.settings.jobs_maxlen],
    )
    return _text(status), info


def _flatten(entries: Sequence[Entry]) -> list[str]:
    return [field for entry in entries for field in entry]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _deliveries(entries: list[Any]) -> list[Delivery]:
    out: list[Delivery] = []
    for entry_id, fields in entries:
        if not fields:  # deleted while pending (Redis < 7 returns these)
            continue
        out.append(
            Delivery(
                _text(entry_id),
                _text(fields.get(b"job", b"")),
                _text(fields.get(b"user", b"")),
            )
        )
    return out
