"""The job queue's shared vocabulary: ids, jobs, attempts, deliveries, the client.

The queue over Redis Streams is split by who uses it, all sharing one
`ScriptPipeline` per process (`pipeline.py`): `admission.py` is the gateway's
(submit, cancel, live events), `leases.py` the workers' (read, begin, append,
extend, finish, fail, reclaim) and `admin.py` the CLI's and the health
check's (dead letters, requeue, figures). Everything that decides and writes
is one Lua script (`scripts.py`). Delivery is at-least-once: see `leases.py`.

Must not import: websockets, the store, the core.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis

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


def flatten(entries: Sequence[Entry]) -> list[str]:
    """Entries as one flat argument list (kind, text, extra, kind, ...)."""
    return [field for entry in entries for field in entry]


def as_text(value: Any) -> str:
    """A Redis reply value as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_deliveries(entries: list[Any]) -> list[Delivery]:
    """Stream entries (from XREADGROUP or XAUTOCLAIM) as deliveries."""
    out: list[Delivery] = []
    for entry_id, fields in entries:
        if not fields:  # deleted while pending (Redis < 7 returns these)
            continue
        out.append(
            Delivery(
                as_text(entry_id),
                as_text(fields.get(b"job", b"")),
                as_text(fields.get(b"user", b"")),
            )
        )
    return out
