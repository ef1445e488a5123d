"""`grizz-server run` and `check` as a user runs them: processes, embedded Redis."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from grizz_server.redis_server import free_port
from tests.fakes.openai_server import FakeOpenAI

CLI = [sys.executable, "-m", "grizz_server"]


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout
    )


def _wait_healthy(
    port: int, proc: subprocess.Popen[bytes], timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "launcher exited early"
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{port}/healthz", timeout=2
            ) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("server did not become healthy")


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]


def _started(log: Path, name: str) -> list[int]:
    pids = []
    for line in log.read_text().splitlines():
        record = json.loads(line)
        if record.get("msg") == "process started" and record.get("child") == name:
            pids.append(int(record["pid"]))
    return pids


def _launch(home: Path, port: int) -> subprocess.Popen[bytes]:
    with open(home / "launcher.stderr", "ab") as stderr:
        return subprocess.Popen(
            [*CLI, "run", "--workers", "1", "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


@pytest.fixture
def launcher_env(
    provider_env: FakeOpenAI, grizz_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    monkeypatch.setenv("GRIZZ_SERVER_RESTART_LIMIT", "2")
    monkeypatch.setenv("GRIZZ_SERVER_SHUTDOWN_GRACE_S", "2")
    monkeypatch.setenv("GRIZZ_SERVER_BLOCK_MS", "200")
    return grizz_home


@pytest.mark.slow
def test_run_check_restart_and_clean_shutdown(launcher_env: Path) -> None:
    port = free_port()
    assert _cli("users", "add", "alice").returncode == 0
    proc = _launch(launcher_env, port)
    try:
        _wait_healthy(port, proc)
        check = _cli("check", "--json")
        report = json.loads(check.stdout)
        assert check.returncode == 0, check.stdout + check.stderr
        assert report["healthy"] and report["live_workers"] == 1
        log = launcher_env / "server" / "logs" / "launcher.log"
        first = _started(log, "worker-1")
        os.kill(first[-1], signal.SIGKILL)  # a crash: the launcher restarts it
        for _ in range(100):
            if len(_started(log, "worker-1")) == 2:
                break
            time.sleep(0.1)
        assert len(_started(log, "worker-1")) == 2
        children = _children(proc.pid)
        assert len(children) >= 3  # redis, gateway, worker
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        stopped_in = time.monotonic() - started
        assert stopped_in < 15, stopped_in
        for child in children:  # nothing left behind
            with pytest.raises(ProcessLookupError):
                os.kill(child, 0)
        assert not (launcher_env / "server" / "run.json").exists()
        assert (launcher_env / "server" / "redis" / "appendonlydir").is_dir()
        text = log.read_text()
        assert "embedded redis-server" in text
        assert "grz_" not in text and "sk-test-key" not in text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_a_process_that_keeps_crashing_stops_the_server(launcher_env: Path) -> None:
    port = free_port()
    proc = _launch(launcher_env, port)
    try:
        _wait_healthy(port, proc)
        log = launcher_env / "server" / "logs" / "launcher.log"
        for crash in range(3):
            for _ in range(100):
                pids = _started(log, "worker-1")
                if len(pids) == crash + 1:
                    break
                time.sleep(0.1)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pids[-1], signal.SIGKILL)
        assert proc.wait(60) == 1
        assert "giving up" in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_unreachable_redis_is_one_sentence(provider_env: FakeOpenAI) -> None:
    result = _cli("run", "--redis-url", f"redis://127.0.0.1:{free_port()}/0")
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(
        "grizz-server: Cannot reach Redis at redis://127.0.0.1:"
    )
    assert "Traceback" not in result.stderr


def test_check_is_unhealthy_without_redis_or_workers(redis_url: str) -> None:
    result = _cli("check")
    assert result.returncode == 1
    assert "FAIL  redis" in result.stdout
    result = _cli("check", "--redis-url", redis_url)
    assert result.returncode == 1  # reachable, but no worker is alive
    assert "FAIL  workers" in result.stdout and "ok    redis" in result.stdout


@pytest.mark.slow
def test_a_second_run_on_the_same_home_is_refused(launcher_env: Path) -> None:
    port = free_port()
    proc = _launch(launcher_env, port)
    try:
        _wait_healthy(port, proc)
        run_json = launcher_env / "server" / "run.json"
        before = run_json.read_text()
        second = _cli("run", "--workers", "1", "--port", str(free_port()))
        assert second.returncode == 3
        assert second.stderr == (
            f"grizz-server: grizz-server is already running from {launcher_env} "
            f"(pid {proc.pid}); stop it first, or give the second one its own "
            "GRIZZ_HOME.\n"
        )
        assert run_json.read_text() == before  # untouched, still there
        redis_servers = [
            pid
            for pid in _children(proc.pid)
            if "redis-server" in Path(f"/proc/{pid}/cmdline").read_text()
        ]
        assert len(redis_servers) == 1
        check = _cli("check", "--json")
        assert check.returncode == 0, check.stdout + check.stderr
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        # The lock goes with the process: the next run may start.
        again = _launch(launcher_env, port)
        try:
            _wait_healthy(port, again)
        finally:
            again.send_signal(signal.SIGTERM)
            assert again.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_check_never_creates_a_store(grizz_home: Path) -> None:
    result = _cli("check")
    assert result.returncode == 1
    assert (
        f"FAIL  store         no store at {grizz_home / 'server.db'} "
        "(`grizz-server users add` or `grizz-server run` creates it)"
    ) in result.stdout
    assert not (grizz_home / "server.db").exists()


@pytest.mark.slow
def test_check_uses_the_running_servers_store(
    launcher_env: Path, pg_database: str
) -> None:
    import asyncio

    from tests.server.conftest_store import _admin

    asyncio.run(_admin(pg_database, "DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    # trust auth ignores the password; it must not end up in run.json
    with_password = pg_database.replace("://postgres@", "://postgres:hunter2@")
    port = free_port()
    with open(launcher_env / "launcher.stderr", "ab") as stderr:
        proc = subprocess.Popen(
            [*CLI, "run", "-w", "1", "--port", str(port), "--db-url", with_password],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        _wait_healthy(port, proc)
        run_json = (launcher_env / "server" / "run.json").read_text()
        assert "hunter2" not in run_json
        assert json.loads(run_json)["db_url"] == pg_database
        check = _cli("check", "--json")
        report = json.loads(check.stdout)
        assert check.returncode == 0, check.stdout + check.stderr
        assert report["checks"]["store"]["detail"] == (
            f"{pg_database} (the running server's store)"
        )
        assert not (launcher_env / "server.db").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
