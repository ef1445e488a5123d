"""Every Redis key, stream, channel and group name grizz-server uses.

One module so a reader (or `grizz-server check`) can see the whole key space:

- `grizz:jobs` (stream, group `workers`): one entry per delivery of a job.
- `grizz:jobinfo:{job}` (hash): who the job is for, its state and attempt.
- `grizz:lease:{job}` (string, PX): the token of the worker allowed to write.
- `grizz:job:{job}` (stream): the reply as chunks, one per entry; expires.
- `grizz:delayed` (zset): jobs waiting for their retry backoff.
- `grizz:dlq` (stream): dead letters.
- `grizz:inflight` (zset): every unfinished job (queue depth for backpressure).
- `grizz:user:{user}:active` (zset): a user's unfinished jobs.
- `grizz:user:{user}:rate` (hash): a user's token bucket.
- `grizz:user:{user}:changes` (pub/sub channel): live change events.
- `grizz:user:{user}:gateways` (zset): ids of the gateways holding one of the
  user's devices, scored by when that registration expires (ms).
- `grizz:gateway:{id}:inbox` (stream): a copy of every output entry of the
  jobs of that gateway's users (`queue/scripts.py` builds this name in Lua).
- `grizz:worker:{name}` (string, PX): a live worker's heartbeat.
- `grizz:metrics:{metric}` (hash): the workers' histograms and counters,
  flushed with each heartbeat, rendered by every gateway's /metrics.
- `grizz:failing` (hash): processes a launcher left stopped after too many
  crashes, `host:GRIZZ_HOME/name` → why (read by /healthz).
- `grizz:tokens:revoked` (pub/sub channel): ids (or unique id prefixes) of
  device tokens just revoked; every gateway re-checks and closes their
  connections (`gateway/revocation.py`).

Must not import: anything but the standard library.
"""

from __future__ import annotations

PREFIX = "grizz"
JOBS = f"{PREFIX}:jobs"
GROUP = "workers"
DELAYED = f"{PREFIX}:delayed"
DLQ = f"{PREFIX}:dlq"
INFLIGHT = f"{PREFIX}:inflight"
TOKENS_REVOKED = f"{PREFIX}:tokens:revoked"
"""Pub/sub channel: a device token id (or unique prefix) that was just revoked."""
FAILING = f"{PREFIX}:failing"
"""Hash: `host:home/name` → why a launcher left that process stopped."""
WORKERS = f"{PREFIX}:workers"
"""Zset of worker names by last heartbeat (ms); the string keys decide liveness."""


def job_info(job_id: str) -> str:
    return f"{PREFIX}:jobinfo:{job_id}"


def lease(job_id: str) -> str:
    return f"{PREFIX}:lease:{job_id}"


def job_out(job_id: str) -> str:
    """The per-job output stream devices read the reply from."""
    return f"{PREFIX}:job:{job_id}"


def user_active(user_id: str) -> str:
    return f"{PREFIX}:user:{user_id}:active"


def user_rate(user_id: str) -> str:
    return f"{PREFIX}:user:{user_id}:rate"


def user_changes(user_id: str) -> str:
    """Pub/sub channel of live change events for one user's devices."""
    return f"{PREFIX}:user:{user_id}:changes"


def user_gateways(user_id: str) -> str:
    return f"{PREFIX}:user:{user_id}:gateways"


def gateway_inbox(gateway_id: str) -> str:
    """A gateway's inbox: the output entries of its users' jobs, in one stream."""
    return f"{PREFIX}:gateway:{gateway_id}:inbox"


def worker(name: str) -> str:
    return f"{PREFIX}:worker:{name}"


METRIC_PREFIX = f"{PREFIX}:metrics:"
"""Hashes of the workers' histograms and counters (`grizz_server/timings.py`):
`grizz:metrics:{metric}` → bucket index / `sum` / `count` (or label → count)."""


def metric(name: str) -> str:
    return METRIC_PREFIX + name
