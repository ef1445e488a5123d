"""`grizz-server run`: start Redis if needed, then supervise gateway + N workers.

Each role runs as its own process (`python -m grizz_server gateway|worker`),
writes its own JSON log under the log directory, and is restarted with
exponential backoff when it dies; so is the embedded redis-server (from its
AOF, on the same port). A process that dies `restart_limit` times within a
minute is given up on: a worker is left stopped (reported by `check`,
`/healthz` and the log) while the others serve; the gateway, the embedded
Redis or the last worker stop everything, and the launcher exits non-zero
rather than flap forever. A worker's jobs are requeued the moment its process
exits (its consumer name is the launcher's to give), and at start those of
the previous run's workers. Every child gets SIGTERM from the kernel if the
launcher dies (`processes.py`); one generation per GRIZZ_HOME
(`generation.py`). A child that exits with `STARTUP_FAILED` (port taken, bad
configuration, unusable database) stops the server at once, with the reason
it logged. SIGTERM/SIGINT stop the children (they close connections with 1001
and hand running jobs back), then the embedded Redis.

Must not import: websockets, the core's session, textual.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field, replace

from redis.asyncio import Redis
from redis.exceptions import RedisError

from grizz_core import paths
from grizz_core.errors import ConfigError
from grizz_server import keys
from grizz_server.generation import (
    consumer_for,
    lock_file,
    previous_generation,
    remove_run_file,
    run_file,
    take_lock,
    write_run_file,
)
from grizz_server.preflight import child_reason, preflight, safe_url
from grizz_server.processes import parent_death_hook, wait_exit
from grizz_server.queue.jobs import as_text
from grizz_server.queue.leases import requeue_dead
from grizz_server.queue.pipeline import ScriptPipeline
from grizz_server.redis_server import RedisProcess
from grizz_server.settings import (
    STARTUP_FAILED,
    SUPERVISED_ENV,
    ServerSettings,
    drop_password,
    server_dir,
)

__all__ = ["Launcher", "lock_file", "preflight", "run_file", "safe_url", "take_lock"]

log = logging.getLogger(__name__)
RESTART_WINDOW_S = 60.0
STOP_TIMEOUT_S = 20.0
REDIS_DOWN = (RedisError, OSError)


def _make_private() -> None:
    """Tighten what earlier versions created 0755/0644 under GRIZZ_HOME: the
    server's directory, its logs and Redis directories, and the default store
    (a database given with --db-url is the user's and is left alone)."""
    from grizz_server.store.engine import DB_FILE

    base = server_dir()
    for directory in (base, base / "logs", base / "redis"):
        if directory.is_dir():
            directory.chmod(0o700)
    logs = base / "logs"
    for path in [
        *(logs.glob("*.log") if logs.is_dir() else []),
        *(paths.data_dir() / f"{DB_FILE}{end}" for end in ("", "-wal", "-shm")),
    ]:
        with contextlib.suppress(FileNotFoundError):
            path.chmod(0o600)


@dataclass
class Child:
    """One supervised process and its crash history."""

    name: str
    role: str
    proc: asyncio.subprocess.Process | None = None
    crashes: list[float] = field(default_factory=list)
    consumer: str = ""
    """A worker's consumer name in the job group (new for each start)."""
    failed: str = ""
    """Why a worker was left stopped (it crashed too often); empty while it runs."""


class Launcher:
    """Supervises the server's processes until stopped."""

    def __init__(self, settings: ServerSettings, *, verbose: bool = False) -> None:
        self.settings = settings
        self.verbose = verbose
        self.children: list[Child] = []
        self.redis: RedisProcess | None = None
        self.redis_child = Child("redis", "redis")
        self.stopping = asyncio.Event()
        self.failed = ""
        self.orphans: list[str] = []
        """Consumer names of dead workers whose jobs are not yet requeued."""
        self._queue: ScriptPipeline | None = None

    async def run(self) -> int:
        """Start everything; return the exit status once stopped.

        Raises:
            ConfigError: another launcher, or processes of an earlier one,
                are running on this GRIZZ_HOME.
        """
        os.umask(0o077)  # logs, run.json, Redis's AOF, a new store: owner only
        lock = take_lock()
        try:
            self.orphans = await previous_generation(self.settings.shutdown_grace_s + 5)
            _make_private()
            return await self._run()
        finally:
            os.close(lock)

    async def _run(self) -> int:
        try:
            self._start_redis()
            await preflight(self.settings)
            self._queue = ScriptPipeline(
                Redis.from_url(self.settings.redis_url, socket_timeout=5)
            )
            await self._requeue()
            await self._report_failing()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stopping.set)
            self.children = [Child("gateway", "gateway")] + [
                Child(f"worker-{i + 1}", "worker") for i in range(self.settings.workers)
            ]
            self._write_run_file()
            supervisors = [
                asyncio.create_task(self._supervise(c)) for c in self.children
            ]
            if self.redis is not None:
                supervisors.append(asyncio.create_task(self._supervise_redis()))
            await self.stopping.wait()
            log.info("stopping", extra={"reason": self.failed or "signal"})
            await self._stop_children()
            for task in supervisors:
                task.cancel()
            await asyncio.gather(*supervisors, return_exceptions=True)
            for child in self.children:
                child.failed = ""
            await self._report_failing()
        finally:
            remove_run_file()
            if self._queue is not None:
                await self._queue.redis.aclose()
            if self.redis is not None:
                self.redis.stop()
                log.info("embedded redis stopped")
        return 1 if self.failed else 0

    def _start_redis(self) -> None:
        if self.settings.redis_url:
            return
        directory = server_dir() / "redis"
        self.redis = RedisProcess(directory, persist=True).start()
        self.settings = replace(self.settings, redis_url=self.redis.url)
        log.info(
            "no REDIS_URL set: started an embedded redis-server with AOF persistence",
            extra={"redis_url": self.redis.url, "dir": str(directory)},
        )

    def _write_run_file(self) -> None:
        from grizz_server.store import default_db_url

        db_url = self.settings.db_url or default_db_url()
        pids = {c.name: c.proc.pid for c in self.children if c.proc is not None}
        if self.redis is not None and self.redis.proc is not None:
            pids["redis"] = self.redis.proc.pid
        write_run_file(
            {
                "pid": os.getpid(),
                "redis_url": self.settings.redis_url,
                "db_url": drop_password(db_url),  # for `check`; no secrets
                "db_password_omitted": drop_password(db_url) != db_url,
                "host": self.settings.host,
                "port": self.settings.port,
                "heartbeat_ms": self.settings.heartbeat_ms,
                "embedded_redis": self.redis is not None,
                "pids": pids,
                "consumers": [
                    *self.orphans,
                    *(c.consumer for c in self.children if c.consumer),
                ],
                "failing": {c.name: c.failed for c in self.children if c.failed},
            }
        )

    async def _spawn(self, child: Child) -> asyncio.subprocess.Process:
        env = {**os.environ, **self.settings.env(), SUPERVISED_ENV: "1"}
        args = [sys.executable, "-m", "grizz_server", child.role, "--name", child.name]
        if child.role == "worker":
            child.consumer = consumer_for(child.name)
            args += ["--consumer", child.consumer]
        if self.verbose:
            args.append("--verbose")
        proc = await asyncio.create_subprocess_exec(
            *args,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            preexec_fn=parent_death_hook(),
        )
        log.info("process started", extra={"child": child.name, "pid": proc.pid})
        return proc

    async def _supervise(self, child: Child) -> None:
        while not self.stopping.is_set():
            log_file = self.settings.logs_path() / f"{child.name}.log"
            offset = log_file.stat().st_size if log_file.exists() else 0
            child.proc = await self._spawn(child)
            self._write_run_file()
            code = await child.proc.wait()
            if self.stopping.is_set():
                return
            if child.consumer:
                self.orphans.append(child.consumer)
                child.consumer = ""
                await self._requeue()
            reason = child_reason(log_file, offset)
            if code == STARTUP_FAILED:  # retrying would fail the same way
                reason = reason or f"it gave no reason (see {log_file})."
                self._stop_server(
                    f"{child.name} cannot start: {reason}",
                    "process cannot start; stopping the server",
                    child=child.name,
                    code=code,
                    reason=reason,
                )
                return
            delay = self._crashed(child, code, reason or "no reason logged (killed?)")
            if delay is None:
                await self._give_up(child, reason)
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)

    def _crashed(self, child: Child, code: int | None, reason: str) -> float | None:
        """Record a crash; the delay before the restart, None past the limit."""
        now = time.monotonic()
        child.crashes = [t for t in child.crashes if now - t < RESTART_WINDOW_S]
        child.crashes.append(now)
        log.error(
            "process exited",
            extra={
                "child": child.name,
                "code": code,
                "crashes_last_minute": len(child.crashes),
                "reason": reason,
            },
        )
        if len(child.crashes) > self.settings.restart_limit:
            return None
        return min(10.0, 0.25 * 2.0 ** (len(child.crashes) - 1))

    async def _give_up(self, child: Child, reason: str) -> None:
        """Leave a flapping worker stopped while others serve; else stop all."""
        text = (
            f"{child.name} crashed {len(child.crashes)} times within "
            f"{RESTART_WINDOW_S:.0f} s; giving up"
            + (f" (last: {reason.rstrip('.')})" if reason else "")
        )
        serving = [
            c
            for c in self.children
            if c.role == "worker" and not c.failed and c is not child
        ]
        if child.role != "worker" or not serving:
            self._stop_server(text, text)
            return
        child.failed = text
        log.error(
            f"{text}; left stopped, {len(serving)} other worker(s) keep serving",
            extra={"child": child.name},
        )
        self._write_run_file()
        await self._report_failing()

    def _stop_server(self, failed: str, message: str, **extra: object) -> None:
        self.failed = failed
        log.error(message, extra=extra)
        self.stopping.set()

    async def _supervise_redis(self) -> None:
        """Restart the embedded Redis (from its AOF) when it dies, like a child."""
        assert self.redis is not None and self.redis.proc is not None
        child = self.redis_child
        while not self.stopping.is_set():
            code = await wait_exit(self.redis.proc)  # reaps it: no zombie
            if self.stopping.is_set():
                return
            delay = self._crashed(child, code, "embedded redis-server died")
            if delay is None:
                self._stop_server(
                    f"the embedded redis-server died {len(child.crashes)} times "
                    f"within {RESTART_WINDOW_S:.0f} s; giving up",
                    "embedded redis keeps dying; stopping the server",
                )
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)
            if self.stopping.is_set():
                return
            try:
                await self.redis.astart()
            except ConfigError as exc:
                self._stop_server(str(exc), "embedded redis cannot restart")
                return
            log.info(
                "embedded redis restarted from its AOF",
                extra={"pid": self.redis.proc.pid},
            )
            self._write_run_file()
            await self._requeue()

    async def _requeue(self) -> None:
        """Requeue the jobs of the dead workers in `orphans` (kept on failure:
        the next call, or the visibility timeout, takes care of them)."""
        assert self._queue is not None
        while self.orphans:
            consumer = self.orphans[0]
            try:
                jobs = await requeue_dead(self._queue, self.settings, consumer)
            except REDIS_DOWN as exc:
                log.warning(
                    "could not requeue a dead worker's jobs yet",
                    extra={"consumer": consumer, "error": str(exc)},
                )
                return
            self.orphans.pop(0)
            if jobs:
                log.info(
                    "requeued a dead worker's jobs",
                    extra={"consumer": consumer, "entries": jobs},
                )

    async def _report_failing(self) -> None:
        """Publish the workers left stopped, for every gateway's /healthz."""
        assert self._queue is not None
        redis = self._queue.redis
        prefix = f"{socket.gethostname()}:{paths.data_dir()}/"
        failing = {prefix + c.name: c.failed for c in self.children if c.failed}
        with contextlib.suppress(*REDIS_DOWN):
            fields = await redis.hkeys(keys.FAILING)
            own = [f for f in fields if as_text(f).startswith(prefix)]
            if own:
                await redis.hdel(keys.FAILING, *own)
            for name, why in failing.items():
                await redis.hset(keys.FAILING, name, why)

    async def _stop_children(self) -> None:
        live = [c.proc for c in self.children if c.proc and c.proc.returncode is None]
        for proc in live:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        if not live:
            return
        timeout = self.settings.shutdown_grace_s + 5
        _, pending = await asyncio.wait(
            [asyncio.create_task(p.wait()) for p in live], timeout=timeout
        )
        for proc in live:
            if proc.returncode is None:
                log.warning(
                    "process did not stop in time; killing", extra={"pid": proc.pid}
                )
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        if pending:
            await asyncio.wait(pending, timeout=5)
