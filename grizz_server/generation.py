"""One generation of `grizz-server run` per GRIZZ_HOME: its lock and run.json.

A generation is a launcher and the processes it started. The launcher holds
`launcher.lock` (flock) for its life and records itself in `run.json`: its
pid, each child's pid, the embedded Redis's pid, the workers' consumer
names and the processes it left stopped. A new `run` takes the lock (a live
launcher holds it), then reads the previous run.json: if a process it names
is still alive (an orphan of a launcher killed by SIGKILL, which gets SIGTERM
from its parent-death signal and should be exiting), it waits a little, then
refuses in one line, before starting anything and without touching the
file; otherwise it takes over the dead generation's workers' consumer names
so their jobs can be requeued at once.

Must not import: websockets, redis, the store, the core's session, textual.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from grizz_core import paths
from grizz_core.errors import ConfigError
from grizz_server.processes import alive
from grizz_server.settings import server_dir

ORPHAN_WAIT_S = 15.0
"""How long a new run waits for a dead launcher's children to finish exiting."""
PROGRAMS = {"redis": "redis-server"}
"""What a recorded process's command line contains (default: `grizz_server`)."""


def run_file() -> Path:
    """Where a running launcher records its pid, Redis URL, store URL (without
    its password) and port, for `check` and `dlq`."""
    return server_dir() / "run.json"


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


def read_run_file() -> dict[str, Any]:
    """What the last launcher wrote about itself ({} when there is nothing)."""
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(run_file().read_text())
        if isinstance(data, dict):
            return data
    return {}


def write_run_file(data: dict[str, Any]) -> None:
    """Replace run.json atomically (`check` may be reading it)."""
    path = run_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def remove_run_file() -> None:
    """Remove run.json if this process wrote it (never another generation's)."""
    if read_run_file().get("pid") == os.getpid():
        with contextlib.suppress(OSError):
            run_file().unlink()


def consumer_for(child: str) -> str:
    """A fresh consumer name for a worker this launcher starts."""
    return f"{socket.gethostname()}:{os.getpid()}:{child}:{os.urandom(3).hex()}"


def _live(data: dict[str, Any]) -> dict[str, int]:
    pids = data.get("pids")
    recorded = pids if isinstance(pids, dict) else {}
    launcher = data.get("pid")
    if isinstance(launcher, int):
        recorded = {**recorded, "launcher": launcher}
    return {
        str(name): pid
        for name, pid in recorded.items()
        if isinstance(pid, int)
        and pid != os.getpid()
        and alive(pid, PROGRAMS.get(str(name), "grizz_server"))
    }


async def previous_generation(wait_s: float = ORPHAN_WAIT_S) -> list[str]:
    """Check that the last generation on this home is gone; its consumer names.

    Called with the lock held, before anything starts.

    Raises:
        ConfigError: a process the last run.json names is still alive after
            `wait_s` seconds.
    """
    data = read_run_file()
    deadline = time.monotonic() + wait_s
    live = _live(data)
    while live and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        live = _live(data)
    if live:
        names = ", ".join(f"{name} (pid {pid})" for name, pid in sorted(live.items()))
        raise ConfigError(
            f"processes of an earlier grizz-server on {paths.data_dir()} are still "
            f"running: {names}; stop them (kill {' '.join(map(str, live.values()))}) "
            "and start again."
        )
    consumers = data.get("consumers")
    return [str(c) for c in consumers] if isinstance(consumers, list) else []
