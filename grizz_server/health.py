"""`grizz-server check`: Redis up, store usable, queue moving, a worker alive?

Must not import: websockets, the core's session, textual.
"""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass, field
from typing import Any

from grizz_core.errors import GrizzError
from grizz_server.generation import read_run_file
from grizz_server.preflight import safe_url
from grizz_server.settings import ServerSettings


@dataclass
class Report:
    """One line per component; `healthy` is False when any `ok` is False."""

    lines: list[tuple[str, bool, str]] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, ok: bool, detail: str) -> None:
        self.lines.append((name, ok, detail))

    @property
    def healthy(self) -> bool:
        return all(ok for _, ok, _ in self.lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "checks": {name: {"ok": ok, "detail": d} for name, ok, d in self.lines},
            **self.figures,
        }


def running_server() -> dict[str, Any]:
    """What the local launcher wrote about itself ({} when none is running)."""
    return read_run_file()


async def check(settings: ServerSettings) -> Report:
    report = Report()
    local = running_server()
    redis_url = settings.redis_url or str(local.get("redis_url", ""))
    await _check_store(settings, local, report)
    if not redis_url:
        report.add("redis", False, "no REDIS_URL set and no running grizz-server found")
    else:
        heartbeat_ms = int(local.get("heartbeat_ms") or settings.heartbeat_ms)
        await _check_redis(redis_url, report, heartbeat_ms, settings)
    if local.get("port"):
        _check_gateway(str(local.get("host", "127.0.0.1")), int(local["port"]), report)
    failing = local.get("failing")
    for name, why in (failing if isinstance(failing, dict) else {}).items():
        report.add(str(name), False, f"left stopped: {why}")
    return report


async def _check_store(
    settings: ServerSettings, local: dict[str, Any], report: Report
) -> None:
    """The configured store, else the running server's (run.json), else the default.

    Never creates a database: a missing SQLite file is reported as missing.
    """
    from grizz_server.store import ServerStore, default_db_url
    from grizz_server.store.engine import parse_url, sqlite_damage

    url, whose, hint = settings.db_url, "", ""
    if not url and local.get("db_url"):
        url, whose = str(local["db_url"]), " (the running server's store)"
        if local.get("db_password_omitted"):
            hint = (
                "; the running server's URL has a password, which run.json does "
                "not keep: pass --db-url or set GRIZZ_SERVER_DB_URL"
            )
    url = url or default_db_url()
    try:
        target = parse_url(url)
        if target.path is not None and not target.path.exists():
            report.add(
                "store",
                False,
                f"no store at {target.path} (`grizz-server users add` or "
                "`grizz-server run` creates it)",
            )
            return
        if target.path is not None:
            damage = sqlite_damage(target.path)
            if damage:
                report.add(
                    "store",
                    False,
                    f"{target.path} is damaged ({damage}); it was left untouched.",
                )
                return
        store = await ServerStore.open(url, pool_size=1)
        try:
            await store.check()
        finally:
            await store.close()
    except GrizzError as exc:
        report.add("store", False, f"{str(exc).rstrip('.')}{hint}.")
    else:
        report.add("store", True, f"{safe_url(url)}{whose}")


async def _check_redis(
    url: str, report: Report, heartbeat_ms: int, settings: ServerSettings
) -> None:
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    from grizz_server.queue.admin import QueueAdmin
    from grizz_server.queue.pipeline import ScriptPipeline

    redis = Redis.from_url(url, socket_connect_timeout=3, socket_timeout=5)
    try:
        await redis.ping()
        queue = await QueueAdmin(ScriptPipeline(redis), settings).status(heartbeat_ms)
    except (RedisError, OSError) as exc:
        report.add("redis", False, f"{safe_url(url)} unreachable ({exc})")
        return
    finally:
        await redis.aclose()
    report.add("redis", True, safe_url(url))
    report.figures.update(
        queue_depth=queue.depth,
        pending=queue.pending,
        delayed=queue.delayed,
        dead=queue.dead,
        live_workers=queue.live_workers,
        stale_workers=queue.stale_workers,
    )
    report.add(
        "queue",
        True,
        f"{queue.depth} unfinished, {queue.pending} being worked on, "
        f"{queue.delayed} waiting to retry",
    )
    hint = " (inspect with `grizz-server dlq list`)" if queue.dead else ""
    report.add("dead letters", True, f"{queue.dead}{hint}")
    detail = f"{queue.live_workers} alive"
    if queue.stale_workers:
        detail += (
            f", {queue.stale_workers} stale (stopped sending heartbeats in the "
            "past hour)"
        )
    report.add("workers", bool(queue.live_workers), detail)


def _check_gateway(host: str, port: int, report: Report) -> None:
    url = f"http://{host}:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            report.add("gateway", response.status == 200, url)
    except OSError as exc:
        report.add("gateway", False, f"{url} ({exc})")
