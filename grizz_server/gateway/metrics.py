"""Prometheus text exposition for /metrics (names prefixed `grizz_`).

Counters live in the gateway process; queue gauges are read from Redis on
each scrape, so every gateway reports the same queue.

Must not import: the rest of the gateway (`server.py` hands in the numbers
it owns), the store, the core, textual.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict

from redis.asyncio import Redis
from redis.exceptions import RedisError

from grizz_server import keys

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


class Metrics:
    """Counters with optional labels."""

    def __init__(self) -> None:
        self.counters: dict[str, dict[tuple[tuple[str, str], ...], float]] = (
            defaultdict(lambda: defaultdict(float))
        )

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        self.counters[name][tuple(sorted(labels.items()))] += amount

    async def render(self, *, connections: int, redis: Redis) -> str:
        """The exposition: these counters, `connections` and the queue gauges."""
        lines: list[str] = []
        for name in sorted(set(HELP) | set(self.counters)):
            lines += [f"# HELP {name} {HELP.get(name, name)}", f"# TYPE {name} counter"]
            series = self.counters.get(name) or {(): 0.0}
            for labels, value in sorted(series.items()):
                lines.append(f"{name}{_labels(labels)} {value:g}")
        gauges = {"grizz_connections": float(connections)}
        gauges.update(await queue_gauges(redis))
        for name, value in gauges.items():
            lines += [f"# TYPE {name} gauge", f"{name} {value:g}"]
        return "\n".join(lines) + "\n"


async def queue_gauges(redis: Redis) -> dict[str, float]:
    """Queue depth, pending, delayed and dead jobs, live workers (NaN: Redis down)."""
    try:
        pipe = redis.pipeline(transaction=False)
        pipe.zcard(keys.INFLIGHT)
        pipe.zcard(keys.DELAYED)
        pipe.xlen(keys.DLQ)
        pipe.xlen(keys.JOBS)
        inflight, delayed, dead, backlog = await pipe.execute()
        pending = 0
        with contextlib.suppress(RedisError):
            pending = int((await redis.xpending(keys.JOBS, keys.GROUP))["pending"])
        workers = len(
            [k async for k in redis.scan_iter(match=keys.worker("*"), count=500)]
        )
    except (RedisError, OSError):
        nan = float("nan")
        return dict.fromkeys(
            (
                "grizz_queue_depth",
                "grizz_jobs_pending",
                "grizz_jobs_delayed",
                "grizz_jobs_dead",
                "grizz_jobs_stream_length",
                "grizz_workers_live",
                "grizz_redis_up",
            ),
            nan,
        ) | {"grizz_redis_up": 0.0}
    return {
        "grizz_queue_depth": float(inflight),
        "grizz_jobs_pending": float(pending),
        "grizz_jobs_delayed": float(delayed),
        "grizz_jobs_dead": float(dead),
        "grizz_jobs_stream_length": float(backlog),
        "grizz_workers_live": float(workers),
        "grizz_redis_up": 1.0,
    }


def _labels(labels: tuple[tuple[str, str], ...]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{v}"' for k, v in labels)
    return "{" + inner + "}"
