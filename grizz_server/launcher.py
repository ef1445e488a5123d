"""`grizz-server run`: start Redis if needed, then supervise gateway + N workers.

Each role runs as its own process (`python -m grizz_server gateway|worker`),
writes its own JSON log under the log directory, and is restarted with
exponential backoff when it dies; a process that dies `restart_limit` times
within a minute makes the launcher stop everything and exit non-zero rather
than flap forever. One launcher per GRIZZ_HOME: a second one finds the lock
(`launcher.lock`, flock) taken and exits before touching Redis or run.json.
A child that exits with `STARTUP_FAILED` (port taken, bad configuration,
unusable database) stops the server at once, with the reason it logged.
SIGTERM/SIGINT stop the children (they close connections with 1001 and hand
running jobs back), then the embedded Redis.

Must not import: websockets, the core's session, textual.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from grizz_core import paths
from grizz_core.errors import ConfigError
from grizz_server.redis_server import RedisProcess
from grizz_server.settings import (
    STARTUP_FAILED,
    SUPERVISED_ENV,
    ServerSettings,
    drop_password,
    mask_password,
    server_dir,
)

log = logging.getLogger(__name__)
RESTART_WINDOW_S = 60.0
STOP_TIMEOUT_S = 20.0


def run_file() -> Path:
    """Where a running launcher records its pid, Redis URL, store URL (without
    its password) and port, for `check` and `dlq`."""
    return server_dir() / "run.json"


def safe_url(url: str) -> str:
    """`url` with any password replaced by `***` (for logs and messages)."""
    return mask_password(url)


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


def lock_file() -> Path:
    """Held (flock) by a running launcher for its whole life; holds its pid."""
    return server_dir() / "launcher.lock"


def take_lock() -> int:
    """Lock this GRIZZ_HOME's server for this process; return the lock's fd.

    Two launchers on one home would run two Redis servers on one AOF
    directory and remove each other's run.json. The lock is released when the
    process exits, however it exits; the fd is not inherited by children.

    Raises:
        ConfigError: another process holds the lock.
    """
    path = lock_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        pid = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise ConfigError(
            f"grizz-server is already running from {paths.data_dir()} (pid {pid}); "
            "stop it first, or give the second one its own GRIZZ_HOME."
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


@dataclass
class Child:
    """One supervised process and its crash history."""

    name: str
    role: str
    proc: asyncio.subprocess.Process | None = None
    crashes: list[float] = field(default_factory=list)


class Launcher:
    """Supervises the server's processes until stopped."""

    def __init__(self, settings: ServerSettings, *, verbose: bool = False) -> None:
        self.settings = settings
        self.verbose = verbose
        self.children: list[Child] = []
        self.redis: RedisProcess | None = None
        self.stopping = asyncio.Event()
        self.failed = ""

    async def run(self) -> int:
        """Start everything; return the exit status once stopped.

        Raises:
            ConfigError: another launcher is running on this GRIZZ_HOME.
        """
        os.umask(0o077)  # logs, run.json, Redis's AOF, a new store: owner only
        lock = take_lock()
        _make_private()
        try:
            return await self._run()
        finally:
            os.close(lock)

    async def _run(self) -> int:
        try:
            self._start_redis()
            await preflight(self.settings)
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
            await self.stopping.wait()
            log.info("stopping", extra={"reason": self.failed or "signal"})
            await self._stop_children()
            for task in supervisors:
                task.cancel()
            await asyncio.gather(*supervisors, return_exceptions=True)
        finally:
            with contextlib.suppress(OSError):
                run_file().unlink()
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

        path = run_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        db_url = self.settings.db_url or default_db_url()
        path.write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "redis_url": self.settings.redis_url,
                    "db_url": drop_password(db_url),  # for `check`; no secrets
                    "db_password_omitted": drop_password(db_url) != db_url,
                    "host": self.settings.host,
                    "port": self.settings.port,
                    "heartbeat_ms": self.settings.heartbeat_ms,
                    "embedded_redis": self.redis is not None,
                }
            )
        )

    async def _spawn(self, child: Child) -> asyncio.subprocess.Process:
        env = {**os.environ, **self.settings.env(), SUPERVISED_ENV: "1"}
        args = [sys.executable, "-m", "grizz_server", child.role, "--name", child.name]
        if self.verbose:
            args.append("--verbose")
        proc = await asyncio.create_subprocess_exec(
            *args, env=env, stdin=asyncio.subprocess.DEVNULL
        )
        log.info("process started", extra={"child": child.name, "pid": proc.pid})
        return proc

    async def _supervise(self, child: Child) -> None:
        while not self.stopping.is_set():
            log_file = self.settings.logs_path() / f"{child.name}.log"
            offset = log_file.stat().st_size if log_file.exists() else 0
            child.proc = await self._spawn(child)
            code = await child.proc.wait()
            if self.stopping.is_set():
                return
            reason = child_reason(log_file, offset)
            if code == STARTUP_FAILED:  # retrying would fail the same way
                reason = reason or f"it gave no reason (see {log_file})."
                self.failed = f"{child.name} cannot start: {reason}"
                log.error(
                    "process cannot start; stopping the server",
                    extra={"child": child.name, "code": code, "reason": reason},
                )
                self.stopping.set()
                return
            now = time.monotonic()
            child.crashes = [t for t in child.crashes if now - t < RESTART_WINDOW_S] + [
                now
            ]
            log.error(
                "process exited",
                extra={
                    "child": child.name,
                    "code": code,
                    "crashes_last_minute": len(child.crashes),
                    "reason": reason or "no reason logged (killed?)",
                },
            )
            if len(child.crashes) > self.settings.restart_limit:
                self.failed = (
                    f"{child.name} crashed {len(child.crashes)} times within "
                    f"{RESTART_WINDOW_S:.0f} s; giving up"
                    + (f" (last: {reason.rstrip('.')})" if reason else "")
                )
                log.error(self.failed)
                self.stopping.set()
                return
            delay = min(10.0, 0.25 * 2 ** (len(child.crashes) - 1))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)

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


async def preflight(settings: ServerSettings) -> None:
    """Fail fast, in one sentence, on an unreachable Redis, store or provider setup.

    Raises:
        ConfigError: Redis cannot be reached.
        GrizzError: the store or the provider configuration is unusable.
    """
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    from grizz_server.store import ServerStore, default_db_url
    from grizz_server.worker.runner import make_worker_provider

    redis = Redis.from_url(settings.redis_url, socket_connect_timeout=3)
    try:
        await redis.ping()
    except (RedisError, OSError) as exc:
        raise ConfigError(
            f"Cannot reach Redis at {safe_url(settings.redis_url)} ({_reason(exc)}); "
            "start it, fix REDIS_URL, or unset REDIS_URL to use an embedded one."
        ) from None
    finally:
        await redis.aclose()
    store = await ServerStore.open(settings.db_url or default_db_url())
    await store.close()
    provider = make_worker_provider(settings, http="httpx")
    await provider.aclose()


def child_reason(log_file: Path, offset: int = 0) -> str:
    """Why a child stopped: the `reason` of its last record past `offset`."""
    with contextlib.suppress(OSError), log_file.open("rb") as handle:
        handle.seek(offset)
        for line in reversed(handle.read().decode(errors="replace").splitlines()):
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and record.get("reason"):
                    reason = str(record["reason"]).rstrip(".")
                    return (reason[:1].lower() + reason[1:]) + "."
    return ""


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.rstrip(".")
