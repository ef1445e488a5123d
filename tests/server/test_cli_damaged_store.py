"""A damaged SQLite store: `check` says so, `run` stops at once saying why."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from grizz_server.redis_server import free_port
from tests.fakes.openai_server import FakeOpenAI
from tests.server.harness import run_cli as _cli


def _damage(db: Path, index: str = "conversations_by_day") -> None:
    """Overwrite one index's root page: the file still opens and migrates."""
    conn = sqlite3.connect(db)
    (root,) = conn.execute(
        "SELECT rootpage FROM sqlite_master WHERE name = ?", (index,)
    ).fetchone()
    (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    conn.close()
    with db.open("r+b") as handle:
        handle.seek((root - 1) * page_size)
        handle.write(b"\xff" * page_size)


@pytest.fixture
def damaged_home(provider_env: FakeOpenAI, grizz_home: Path) -> Path:
    assert _cli("users", "add", "alice").returncode == 0
    _damage(grizz_home / "server.db")
    return grizz_home


def test_check_reports_a_damaged_store(damaged_home: Path) -> None:
    before = (damaged_home / "server.db").read_bytes()
    result = _cli("check", "--json")
    assert result.returncode == 1
    store = json.loads(result.stdout)["checks"]["store"]
    assert store["ok"] is False
    assert store["detail"].startswith(f"{damaged_home / 'server.db'} is damaged (")
    assert "quick_check: Page " in store["detail"] and "\n" not in store["detail"]
    assert (damaged_home / "server.db").read_bytes() == before


@pytest.mark.slow
def test_run_stops_at_once_and_says_why(
    damaged_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRIZZ_SERVER_SHUTDOWN_GRACE_S", "2")
    started = time.monotonic()
    result = _cli("run", "--workers", "1", "--port", str(free_port()))
    took = time.monotonic() - started
    assert result.returncode == 1 and "Traceback" not in result.stderr
    plain = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert plain == [
        f"grizz-server: worker-1 cannot start: {damaged_home / 'server.db'} is not a "
        "usable grizz-server database (database disk image is malformed); it was "
        "left untouched."
    ]
    assert took < 20, took
    logs = damaged_home / "server" / "logs"
    worker = [
        json.loads(line) for line in (logs / "worker-1.log").read_text().splitlines()
    ]
    assert worker[-1]["msg"] == "cannot start"
    assert "database disk image is malformed" in worker[-1]["reason"]
    launcher = [
        json.loads(line) for line in (logs / "launcher.log").read_text().splitlines()
    ]
    starts = [
        r
        for r in launcher
        if r["msg"] == "process started" and r["child"] == "worker-1"
    ]
    assert len(starts) == 1  # not restarted 6 times
    assert any("malformed" in str(r.get("reason", "")) for r in launcher)
