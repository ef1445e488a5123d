"""`grizz-server run` under kill -9: the embedded Redis, the launcher, workers.

Real processes (launcher, gateway, workers, redis-server), real WebSockets,
the OpenAI-compatible fake as the provider. Waits are bounded conditions,
not timings; speed is measured in bench/server_reclaim.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from grizz_server.redis_server import free_port
from tests.fakes.openai_server import FakeOpenAI, Text
from tests.server.harness import Device, Reply
from tests.server.test_launcher import CLI, _cli, _launch, _started, _wait_healthy


def _until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what}")


def _healthz(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            body: dict[str, Any] = json.loads(r.read())
            return body if r.status == 200 else None
    except OSError:
        return None


def _gone(pid: int) -> bool:
    """True once `pid` is neither running nor a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state == "X"


def _tree(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    kids = [int(x) for x in out.stdout.split()]
    return kids + [g for k in kids for g in _tree(k)]


def _redis_pid(launcher: int) -> int:
    return next(
        pid
        for pid in _tree(launcher)
        if "redis-server" in Path(f"/proc/{pid}/cmdline").read_text()
    )


def _token(home: Path) -> str:
    assert _cli("users", "add", "alice").returncode == 0
    issued = _cli("tokens", "add", "alice", "--device", "laptop")
    assert issued.returncode == 0, issued.stderr
    return issued.stdout.strip()


async def _send(port: int, token: str, text: str) -> tuple[Device, str]:
    device = await Device(f"ws://127.0.0.1:{port}", token).connect()
    accepted = await device.say(text)
    return device, accepted.job_id


async def _finish(port: int, token: str, job: str, timeout: float) -> Reply:
    """Reconnect (the old connection may be gone), resume `job`, await it."""
    device = Device(f"ws://127.0.0.1:{port}", token)
    deadline = time.monotonic() + timeout
    while True:
        try:
            await device.connect()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
    try:
        await device.resume(job)
        return await device.finished(job, timeout=max(1.0, deadline - time.monotonic()))
    finally:
        await device.close()


@pytest.fixture
def supervised(
    provider_env: FakeOpenAI, grizz_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Default queue timings (45 s visibility), short shutdown grace."""
    monkeypatch.setenv("GRIZZ_SERVER_SHUTDOWN_GRACE_S", "2")
    monkeypatch.setenv("GRIZZ_SERVER_RESTART_LIMIT", "2")
    return grizz_home


def _launch_workers(home: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    with open(home / "launcher.stderr", "ab") as stderr:
        return subprocess.Popen(
            [*CLI, "run", "--workers", str(workers), "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_a_killed_embedded_redis_is_restarted_from_its_aof(supervised: Path) -> None:
    port = free_port()
    proc = _launch(supervised, port)
    try:
        _wait_healthy(port, proc)
        old = _redis_pid(proc.pid)
        import redis

        url = json.loads((supervised / "server" / "run.json").read_text())["redis_url"]
        client = redis.Redis.from_url(url)
        client.set("grizz:test:kept", "1")
        client.close()
        # appendfsync everysec: Redis may postpone the write while a background
        # fsync runs (a loaded machine); kill it once the key is in the AOF
        aof = supervised / "server" / "redis" / "appendonlydir"
        _until(
            lambda: any(b"grizz:test:kept" in f.read_bytes() for f in aof.iterdir()),
            10,
            "the key is in the AOF",
        )
        os.kill(old, signal.SIGKILL)
        _until(lambda: _gone(old), 10, "the killed redis-server is reaped")
        _until(lambda: _healthz(port), 10, "healthy again")
        assert proc.poll() is None
        new = _redis_pid(proc.pid)
        assert new != old
        client = redis.Redis.from_url(url)  # the same port
        assert client.get("grizz:test:kept") == b"1"  # from the AOF
        client.close()
        log = (supervised / "server" / "logs" / "launcher.log").read_text()
        assert "embedded redis restarted from its AOF" in log
    finally:
        _stop(proc)


@pytest.mark.slow
def test_killing_the_launcher_takes_its_children_with_it(supervised: Path) -> None:
    port = free_port()
    proc = _launch(supervised, port)
    try:
        _wait_healthy(port, proc)
        children = _tree(proc.pid)
        assert len(children) >= 3  # redis, gateway, worker
        proc.kill()
        proc.wait()
        _until(lambda: all(_gone(c) for c in children), 20, "children exit")
        again = _launch(supervised, port)  # the home is free again
        try:
            _wait_healthy(port, again)
        finally:
            _stop(again)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_run_refuses_while_an_earlier_generations_process_lives(
    supervised: Path,
) -> None:
    orphan = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", "grizz_server"]
    )
    try:
        run_json = supervised / "server" / "run.json"
        run_json.parent.mkdir(parents=True, exist_ok=True)
        before = json.dumps({"pid": 999_999_999, "pids": {"gateway": orphan.pid}})
        run_json.write_text(before)
        result = _cli("run", "--workers", "1", "--port", str(free_port()))
        assert result.returncode == 3
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert f"gateway (pid {orphan.pid})" in result.stderr
        assert run_json.read_text() == before  # another generation's: untouched
        assert not (supervised / "server" / "redis").exists()  # nothing started
    finally:
        orphan.kill()
        orphan.wait()


@pytest.mark.slow
def test_a_flapping_worker_is_left_stopped_while_the_others_serve(
    supervised: Path, provider_env: FakeOpenAI
) -> None:
    token = _token(supervised)
    port = free_port()
    proc = _launch_workers(supervised, port, 2)
    try:
        _wait_healthy(port, proc)
        log = supervised / "server" / "logs" / "launcher.log"
        for crash in range(3):  # restart limit 2: the third crash gives up
            pids = _until(
                lambda n=crash + 1: (
                    (p := _started(log, "worker-2")) and len(p) == n and p
                ),
                30,
                "worker-2 (re)started",
            )
            os.kill(pids[-1], signal.SIGKILL)
        _until(lambda: "left stopped" in log.read_text(), 30, "worker-2 given up")
        assert proc.poll() is None  # the server stays up
        body = _until(lambda: _healthz(port), 10, "healthz")
        assert any("worker-2" in f for f in body.get("failing", []))
        check = _cli("check", "--json")
        report = json.loads(check.stdout)
        assert check.returncode == 1
        assert report["checks"]["worker-2"]["ok"] is False
        assert report["checks"]["gateway"]["ok"] and report["live_workers"] == 1
        provider_env.enqueue(Text("Still here."))

        async def talk() -> Reply:
            device, job = await _send(port, token, "Anyone?")
            try:
                return await device.finished(job)
            finally:
                await device.close()

        reply = asyncio.run(talk())
        assert reply.done is not None and reply.text == "Still here."
    finally:
        _stop(proc)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_done_when_every_kill_serves_again_and_loses_nothing(
    provider_env: FakeOpenAI, grizz_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kill, in turn, the embedded Redis, the launcher, a worker (x5 within a
    minute) and the gateway, each with a reply in flight, under default queue
    settings: the server serves again within 10 s, the reply completes, and
    no process is left behind."""
    monkeypatch.setenv("GRIZZ_SERVER_SHUTDOWN_GRACE_S", "2")
    home = grizz_home
    token = _token(home)
    port = free_port()
    log = home / "server" / "logs" / "launcher.log"
    slow = Text("one two three four five six seven eight", chunk=4, delay=0.15)
    provider_env.default = slow  # every attempt, first or restarted, says it
    seen: set[int] = set()

    def round_trip(
        kill: Callable[[subprocess.Popen[bytes]], None], proc: subprocess.Popen[bytes]
    ) -> subprocess.Popen[bytes]:
        async def scenario() -> Reply:
            device, job = await _send(port, token, "Keep this one.")
            await device.wait_for(lambda: device.replies.get(job), timeout=20)
            await device.close()
            nonlocal proc
            kill(proc)
            if proc.poll() is not None:  # the launcher itself: start another
                proc = _launch_workers(home, port, 2)
            await asyncio.to_thread(_until, lambda: _healthz(port), 10, "serving again")
            return await _finish(port, token, job, timeout=15)

        reply = asyncio.run(scenario())
        assert reply.done is not None, reply
        assert reply.text == slow.text
        seen.update(_tree(proc.pid))
        return proc

    def kill_redis(proc: subprocess.Popen[bytes]) -> None:
        os.kill(_redis_pid(proc.pid), signal.SIGKILL)

    def kill_launcher(proc: subprocess.Popen[bytes]) -> None:
        children = _tree(proc.pid)
        proc.kill()
        proc.wait()
        _until(lambda: all(_gone(c) for c in children), 20, "no orphan")

    def kill_worker(proc: subprocess.Popen[bytes]) -> None:
        def restarted() -> int:  # past its restart backoff
            pid = _started(log, "worker-1")[-1]
            return 0 if _gone(pid) else pid

        os.kill(_until(restarted, 15, "worker-1 running"), signal.SIGKILL)

    def kill_gateway(proc: subprocess.Popen[bytes]) -> None:
        os.kill(_started(log, "gateway")[-1], signal.SIGKILL)

    proc = _launch_workers(home, port, 2)
    try:
        _wait_healthy(port, proc)
        proc = round_trip(kill_redis, proc)
        proc = round_trip(kill_launcher, proc)
        _wait_healthy(port, proc)
        started = time.monotonic()
        for _ in range(5):
            proc = round_trip(kill_worker, proc)
        assert time.monotonic() - started < 60
        proc = round_trip(kill_gateway, proc)
        assert proc.poll() is None
    finally:
        _stop(proc)
    _until(lambda: all(_gone(pid) for pid in seen), 20, "no process left behind")
