"""Process plumbing for the launcher: children that die with it, liveness of
a recorded pid, and waiting for a child's exit without a thread.

On Linux a child asks the kernel (prctl `PR_SET_PDEATHSIG`) for SIGTERM when
the launcher dies, so `kill -9` of the launcher (or the OOM killer) never
leaves a gateway, workers or an embedded Redis serving with PPID 1. The
request is made between fork and exec (`parent_death_hook`, given to
`Popen(preexec_fn=…)`), so it covers redis-server as well as Python children,
and a launcher that died before the request was made is noticed there too.
Elsewhere the hook only does that last check.

Must not import: redis, websockets, the store, the core.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

PR_SET_PDEATHSIG = 1
PARENT_GONE = 70
"""Exit status of a child whose launcher died before it could exec (EX_SOFTWARE)."""


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def parent_death_hook(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A `preexec_fn` that makes the child receive `sig` when this process dies.

    Resolved before the fork, so the child only makes one C call and one
    system call between fork and exec.
    """
    prctl = _prctl()
    parent = os.getpid()

    def hook() -> None:
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # the launcher died before the request
            os._exit(PARENT_GONE)

    return hook


def alive(pid: int, program: str) -> bool:
    """True when `pid` is a running (not zombie) process whose command line
    contains `program` (so a recycled pid is not mistaken for ours)."""
    if pid <= 0:
        return False
    proc = Path(f"/proc/{pid}")
    if not proc.parent.is_dir():  # no procfs: all that can be asked
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        stat = (proc / "stat").read_text()
        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0] if ")" in stat else "?"
    return state not in ("Z", "X") and program in cmdline


async def wait_exit(proc: subprocess.Popen[bytes], poll_s: float = 0.1) -> int:
    """Wait for `proc` to exit and reap it (no zombie is left); its status.

    Uses a pidfd where the kernel has them (woken at once), else polls.
    """
    if proc.poll() is not None:
        return proc.returncode
    loop = asyncio.get_running_loop()
    fd = -1
    with contextlib.suppress(AttributeError, OSError):
        fd = os.pidfd_open(proc.pid)
    if fd < 0:
        while proc.poll() is None:
            await asyncio.sleep(poll_s)
        return proc.returncode
    exited = asyncio.Event()
    loop.add_reader(fd, exited.set)
    try:
        while proc.poll() is None:
            await exited.wait()
            exited.clear()
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    return proc.returncode
