"""The workers' side of the job queue: read, lease, stream, finish, retry, reclaim.

Delivery is at-least-once: a job's entry stays in the consumer group's pending
list until `finish` or `fail` acknowledges it, a dead worker's entries are
reclaimed with XAUTOCLAIM once idle past the visibility timeout (or at once,
by `requeue_dead`, when the launcher saw its process exit), and a live
worker keeps its entry fresh (and its lease alive) with `extend`. Every write
is fenced by the attempt's token, in one Lua script (`scripts.py`) per step;
the calls share the process's `ScriptPipeline`.

Must not import: websockets, the store, the core.
"""

from __future__ import annotations

import contextlib
import json
import random
import secrets
import time
from collections.abc import Sequence
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from grizz_server import keys
from grizz_server.queue.jobs import (
    INFO_TTL_S,
    Attempt,
    Delivery,
    Entry,
    as_text,
    flatten,
    parse_deliveries,
)
from grizz_server.queue.pipeline import ScriptPipeline
from grizz_server.settings import ServerSettings


class JobLeases:
    """What a worker asks of the queue, as consumer `consumer`; one per process."""

    def __init__(
        self, pipeline: ScriptPipeline, settings: ServerSettings, consumer: str = ""
    ) -> None:
        self.scripts = pipeline
        """The process's script pipeline, shared with its other queue roles."""
        self.redis: Redis = pipeline.redis
        self.settings = settings
        self.consumer = consumer
        self._renewed: dict[str, float] = {}
        """Fencing token → monotonic time its lease was last set by this process."""

    async def ensure_group(self) -> None:
        """Create the stream and the workers' group (id 0: no entry is skipped)."""
        try:
            await self.redis.xgroup_create(keys.JOBS, keys.GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read(self, count: int, block_ms: int) -> list[Delivery]:
        """New entries for this consumer (XREADGROUP `>`), blocking up to `block_ms`."""
        reply = cast(
            "list[tuple[bytes, list[Any]]] | None",
            await self.redis.xreadgroup(
                keys.GROUP, self.consumer, {keys.JOBS: ">"}, count=count, block=block_ms
            ),
        )
        return [d for _, entries in reply or [] for d in parse_deliveries(entries)]

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
            cursor = as_text(reply[0])
            found.extend(parse_deliveries(reply[1]))
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
        replies = await self.scripts.run_many(
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
            status = as_text(reply[0])
            if status != "run":
                out.append(status)
                continue
            self._renewed[token] = started
            # attempt, user, then message, reply, conversation, tz, day, zone, text
            attempt, _user, *fields = (as_text(v or b"") for v in reply[1:10])
            out.append(Attempt(delivery, int(attempt), token, *fields))
        return out

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
        done = await self.scripts.run(
            "APPEND",
            [
                keys.job_info(d.job_id),
                keys.job_out(d.job_id),
                keys.user_gateways(d.user_id),
            ],
            [a.token, a.attempt, d.job_id, *flatten(entries)],
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
            await self.scripts.run(
                "CHECK", [keys.job_info(a.delivery.job_id)], [a.token]
            )
        )

    async def extend(self, a: Attempt) -> bool:
        """Renew the lease and reset the entry's idle time; False when fenced off."""
        job = a.delivery.job_id
        started = time.monotonic()
        owner = bool(
            await self.scripts.run(
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
            await self.scripts.run(
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
                    *flatten(entries),
                ],
            )
        )

    async def fail(self, a: Attempt, *, code: str, reason: str, retryable: bool) -> str:
        """Retry with backoff or dead-letter, atomically: retry, dead or fenced."""
        self._renewed.pop(a.token, None)
        s = self.settings
        reply = await self.scripts.run(
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
        return as_text(reply[0])

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
            await self.scripts.run(
                "RELEASE",
                [keys.job_info(job), keys.lease(job), keys.JOBS],
                [a.token, keys.GROUP, self.consumer, a.delivery.entry],
            )
        )

    async def promote(self, limit: int = 100) -> int:
        """Move retries whose backoff has passed back into `grizz:jobs`."""
        return int(
            await self.scripts.run(
                "PROMOTE",
                [keys.DELAYED, keys.JOBS],
                [limit, self.settings.jobs_maxlen, keys.job_info("")],
            )
        )


async def requeue_dead(
    pipeline: ScriptPipeline, settings: ServerSettings, consumer: str
) -> int:
    """Put the jobs of `consumer`, whose process is known to be dead, back on
    the queue at once and forget the consumer; the number of entries it held.

    Waiting for the visibility timeout (45 s by default) is for workers that
    may only be slow; the launcher calls this for a worker it saw exit, and
    at start for the previous run's workers.
    """
    total = 0
    batch = 100
    while True:
        seen = int(
            await pipeline.run(
                "ORPHANS",
                [keys.JOBS],
                [
                    keys.GROUP,
                    consumer,
                    settings.jobs_maxlen,
                    keys.job_info(""),
                    keys.lease(""),
                    batch,
                ],
            )
        )
        total += seen
        if seen < batch:
            break
    with contextlib.suppress(ResponseError):  # no group yet: nothing was read
        await pipeline.redis.xgroup_delconsumer(keys.JOBS, keys.GROUP, consumer)
    # its heartbeat key would count it alive for up to two more heartbeats;
    # `check` now reports it stale at once
    await pipeline.redis.delete(keys.worker(consumer))
    return total
