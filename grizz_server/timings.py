"""The workers' timings and error counts, kept in Redis for every gateway's /metrics.

Workers are separate processes (and may run on other hosts), so instead of
prometheus_client's multiprocess mode (a shared directory, files of dead
processes to clean up) each worker adds its observations to in-memory
buckets and flushes them with its heartbeat into one Redis hash per metric
(`HINCRBY`/`HINCRBYFLOAT`, one pipeline per heartbeat, nothing on the job's
path). Any gateway reads those hashes on a scrape and renders them as
Prometheus histograms and counters. The sums are server-wide and survive
worker restarts, as counters should.

Must not import: websockets, the store, the core, prometheus_client.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass

from redis.asyncio import Redis

from grizz_server import keys


@dataclass(frozen=True)
class Histogram:
    name: str
    help: str
    buckets: tuple[float, ...]
    """Upper bounds in seconds (the +Inf bucket is implied)."""


_FAST = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SLOW = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
QUEUE_WAIT = Histogram(
    "grizz_queue_wait_seconds",
    "Time from a job's delivery being queued to a worker starting it.",
    _FAST,
)
FIRST_TOKEN = Histogram(
    "grizz_time_to_first_token_seconds",
    "Time from a worker starting a job to its first reply chunk.",
    _SLOW,
)
JOB_DURATION = Histogram(
    "grizz_job_duration_seconds",
    "Time a worker spent on one attempt of a job, whatever its outcome.",
    _SLOW,
)
PROVIDER_LATENCY = Histogram(
    "grizz_provider_latency_seconds",
    "Time the provider took for one reply (request to last chunk).",
    _SLOW,
)
HISTOGRAMS = (QUEUE_WAIT, FIRST_TOKEN, JOB_DURATION, PROVIDER_LATENCY)
PROVIDER_ERRORS = "grizz_provider_errors_total"
PROVIDER_ERRORS_HELP = "Failed job attempts, by kind of error."


@dataclass
class HistogramData:
    """A histogram as read back: per-bucket (not cumulative) counts, sum, count."""

    counts: list[int]
    total: float
    count: int


class Timings:
    """One worker's observations not yet flushed to Redis."""

    def __init__(self) -> None:
        self._buckets: dict[str, dict[str, float]] = defaultdict(
            lambda: defaultdict(float)
        )
        self._errors: dict[str, int] = defaultdict(int)

    def observe(self, histogram: Histogram, seconds: float) -> None:
        seconds = max(0.0, seconds)
        fields = self._buckets[histogram.name]
        fields[str(bisect.bisect_left(histogram.buckets, seconds))] += 1
        fields["sum"] += seconds
        fields["count"] += 1

    def error(self, kind: str) -> None:
        self._errors[kind] += 1

    async def flush(self, redis: Redis) -> None:
        """Add what was observed since the last flush to the Redis hashes.

        On a Redis error the observations are dropped (metrics, not data).
        """
        buckets, self._buckets = self._buckets, defaultdict(lambda: defaultdict(float))
        errors, self._errors = self._errors, defaultdict(int)
        if not buckets and not errors:
            return
        pipe = redis.pipeline(transaction=False)
        for name, fields in buckets.items():
            for field, amount in fields.items():
                if field == "sum":
                    pipe.hincrbyfloat(keys.metric(name), field, amount)
                else:
                    pipe.hincrby(keys.metric(name), field, int(amount))
        for kind, amount in errors.items():
            pipe.hincrby(keys.metric(PROVIDER_ERRORS), kind, amount)
        await pipe.execute()


async def read(redis: Redis) -> tuple[dict[str, HistogramData], dict[str, int]]:
    """Every histogram and the errors by kind, as the workers flushed them."""
    pipe = redis.pipeline(transaction=False)
    for histogram in HISTOGRAMS:
        pipe.hgetall(keys.metric(histogram.name))
    pipe.hgetall(keys.metric(PROVIDER_ERRORS))
    *hashes, errors = await pipe.execute()
    out: dict[str, HistogramData] = {}
    for histogram, raw in zip(HISTOGRAMS, hashes, strict=True):
        fields = {_text(k): _text(v) for k, v in raw.items()}
        counts = [int(fields.get(str(i), 0)) for i in range(len(histogram.buckets) + 1)]
        out[histogram.name] = HistogramData(
            counts, float(fields.get("sum", 0.0)), int(fields.get("count", 0))
        )
    return out, {_text(k): int(v) for k, v in errors.items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
