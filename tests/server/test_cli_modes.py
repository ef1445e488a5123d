"""The server's files hold message texts: owner-only modes (0700 dirs, 0600 files)."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import time
from pathlib import Path

import pytest

from grizz_server.redis_server import free_port
from tests.fakes.openai_server import FakeOpenAI
from tests.server.harness import CLI
from tests.server.harness import run_cli as _cli
from tests.server.test_launcher import _wait_healthy


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_store_is_private_an_existing_one_is_left_alone(
    grizz_home: Path, tmp_path: Path
) -> None:
    old = os.umask(0o022)  # a typical login shell's
    try:
        assert _cli("users", "add", "alice").returncode == 0
        assert _mode(grizz_home / "server.db") == 0o600
        mine = tmp_path / "mine.db"
        sqlite3.connect(mine).close()
        mine.chmod(0o644)
        assert (
            _cli("users", "add", "bob", "--db-url", f"sqlite:///{mine}").returncode == 0
        )
        assert _mode(mine) == 0o644
    finally:
        os.umask(old)


@pytest.mark.slow
def test_run_keeps_its_files_private(
    provider_env: FakeOpenAI, grizz_home: Path
) -> None:
    old = os.umask(0o022)
    try:
        # What an earlier version left behind: world-readable logs and store.
        logs = grizz_home / "server" / "logs"
        logs.mkdir(parents=True)
        (grizz_home / "server").chmod(0o755)
        logs.chmod(0o755)
        (logs / "gateway.log").write_text("")
        (logs / "gateway.log").chmod(0o644)
        sqlite3.connect(grizz_home / "server.db").close()
        (grizz_home / "server.db").chmod(0o644)
        port = free_port()
        proc = subprocess.Popen(
            [*CLI, "run", "--workers", "1", "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    finally:
        os.umask(old)
    try:
        _wait_healthy(port, proc)
        # healthy means the gateway serves; the worker may still be starting
        # (and so not yet have opened its log) on a loaded machine
        deadline = time.monotonic() + 30
        while len(list(logs.glob("*.log"))) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        server = grizz_home / "server"
        redis_dir = server / "redis"
        dirs = [server, logs, redis_dir, redis_dir / "appendonlydir"]
        files = [
            grizz_home / "server.db",
            *grizz_home.glob("server.db-*"),  # -wal, -shm
            server / "run.json",
            server / "launcher.lock",
            *logs.glob("*.log"),
            *(redis_dir / "appendonlydir").iterdir(),
        ]
        assert len(list(logs.glob("*.log"))) >= 3
        assert {str(d): oct(_mode(d)) for d in dirs} == {
            str(d): oct(0o700) for d in dirs
        }
        assert {str(f): oct(_mode(f)) for f in files} == {
            str(f): oct(0o600) for f in files
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
