"""Prometheus exposition for /metrics (names prefixed `grizz_`), by prometheus_client.

The gateway's own counters live in this process. On each scrape the queue
figures and live workers come from `QueueAdmin.status()` (the numbers
`grizz-server check` prints, no SCAN) and the workers' histograms and error
counts from the Redis hashes they flush with their heartbeat
(`grizz_server/timings.py`), so every gateway reports the same queue and
the same timings. prometheus_client writes HELP/TYPE lines and escapes
label values.

Must not import: the rest of the gateway (`server.py` hands in the numbers
it owns), the store, the core, textual.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from redis.exceptions import RedisError

from grizz_server import timings
from grizz_server.queue.admin import QueueAdmin, QueueStatus

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
HELP = {
    "grizz_frames_received_total": "Frames received from devices, by type.",
    "grizz_frames_sent_total": "Frames sent to devices.",
    "grizz_job_frames_sent_total": "Reply stream frames forwarded to devices.",
    "grizz_bad_frames_total": "Frames refused as malformed.",
    "grizz_refusals_total": "Error frames sent to devices (and HTTP 401 refusals "
    "before the upgrade, as unauthorized), by error code.",
    "grizz_jobs_accepted_total": "Messages stored and queued for a reply.",
    "grizz_auth_failures_total": "Connections refused for a missing or bad token.",
    "grizz_slow_closes_total": "Connections closed for falling too far behind.",
}
QUEUE_GAUGES = {
    "grizz_queue_depth": "Unfinished jobs (queued, running or waiting to retry).",
    "grizz_jobs_pending": "Jobs read by a worker and not yet acknowledged.",
    "grizz_jobs_delayed": "Jobs waiting out a retry's backoff.",
    "grizz_jobs_dead": "Dead letters.",
    "grizz_jobs_stream_length": "Entries in the jobs stream.",
    "grizz_workers_live": "Workers with a fresh heartbeat (as `check` counts).",
    "grizz_workers_stale": "Workers that stopped sending heartbeats in the past hour.",
}
Series = dict[tuple[tuple[str, str], ...], float]


class Metrics:
    """The gateway's counters (with optional labels) and the /metrics page."""

    def __init__(self) -> None:
        self.counters: dict[str, Series] = defaultdict(lambda: defaultdict(float))

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        self.counters[name][tuple(sorted(labels.items()))] += amount

    async def render(self, *, connections: int, admin: QueueAdmin) -> bytes:
        """The exposition: these counters, `connections`, the queue and workers."""
        status: QueueStatus | None = None
        histograms: dict[str, timings.HistogramData] = {}
        errors: dict[str, int] = {}
        try:
            status = await admin.status()
            histograms, errors = await timings.read(admin.redis)
        except (RedisError, OSError):
            pass
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Snapshot(self, connections, status, histograms, errors))
        return generate_latest(registry)


class _Snapshot(Collector):
    """Everything one scrape shows, gathered before prometheus_client renders it."""

    def __init__(
        self,
        metrics: Metrics,
        connections: int,
        status: QueueStatus | None,
        histograms: dict[str, timings.HistogramData],
        errors: dict[str, int],
    ) -> None:
        self.metrics = metrics
        self.connections = connections
        self.status = status
        self.histograms = histograms
        self.errors = errors

    def collect(self) -> Iterator[Metric]:
        yield from self._counters()
        yield _gauge("grizz_connections", "Open device connections.", self.connections)
        yield _gauge(
            "grizz_redis_up", "Whether Redis answered.", self.status is not None
        )
        status = self.status
        for name, text in QUEUE_GAUGES.items():
            value = math.nan if status is None else getattr(status, _FIELD[name])
            yield _gauge(name, text, value)
        yield from self._workers()
        yield from self._timings()

    def _counters(self) -> Iterator[Metric]:
        counters = self.metrics.counters
        for name in sorted(set(HELP) | set(counters)):
            series = counters.get(name) or {(): 0.0}
            names = sorted({k for labels in series for k, _ in labels})
            family = CounterMetricFamily(name, HELP.get(name, name), labels=names)
            for labels, value in sorted(series.items()):
                found = dict(labels)
                family.add_metric([found.get(k, "") for k in names], value)
            yield family

    def _workers(self) -> Iterator[Metric]:
        workers = self.status.workers if self.status else {}
        specs = (
            ("grizz_worker_jobs_running", "jobs", "Jobs a live worker is running."),
            (
                "grizz_worker_resident_memory_bytes",
                "rss",
                "A live worker's resident memory.",
            ),
            ("grizz_worker_cpu_seconds", "cpu_s", "CPU time a live worker has used."),
        )
        for name, key, text in specs:
            family = GaugeMetricFamily(name, text, labels=["worker"])
            for worker, info in sorted(workers.items()):
                family.add_metric([worker], info.get(key, 0.0))
            yield family

    def _timings(self) -> Iterator[Metric]:
        for spec in timings.HISTOGRAMS:
            data = self.histograms.get(spec.name)
            counts = data.counts if data else [0] * (len(spec.buckets) + 1)
            cumulative, buckets = 0, []
            for bound, count in zip((*spec.buckets, math.inf), counts, strict=True):
                cumulative += count
                label = "+Inf" if math.isinf(bound) else repr(bound)
                buckets.append((label, float(cumulative)))
            yield HistogramMetricFamily(
                spec.name,
                spec.help,
                buckets=buckets,
                sum_value=data.total if data else 0.0,
            )
        family = CounterMetricFamily(
            timings.PROVIDER_ERRORS, timings.PROVIDER_ERRORS_HELP, labels=["kind"]
        )
        for kind, count in sorted(self.errors.items()):
            family.add_metric([kind], count)
        yield family


_FIELD = {
    "grizz_queue_depth": "depth",
    "grizz_jobs_pending": "pending",
    "grizz_jobs_delayed": "delayed",
    "grizz_jobs_dead": "dead",
    "grizz_jobs_stream_length": "backlog",
    "grizz_workers_live": "live_workers",
    "grizz_workers_stale": "stale_workers",
}


def _gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, value=float(value))
