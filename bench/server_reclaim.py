"""How soon a crashed worker's reply restarts, with default queue settings.

A real `grizz-server run` (default settings: two workers, embedded Redis)
against the fake provider streaming slowly; for each trial a device sends a
message, and once the reply is streaming the worker running it is killed
with SIGKILL. The figure is the
time from the kill to the device's `restart` frame (attempt 2 begins on the
restarted worker). Before the launcher requeued a dead worker's jobs, this
waited for the visibility timeout (45 s) plus the reclaim period.

    python bench/server_reclaim.py [--trials 5] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grizz_core import protocol as p  # noqa: E402
from grizz_server.redis_server import free_port  # noqa: E402
from tests.fakes.openai_server import FakeOpenAI, Text  # noqa: E402
from tests.server.harness import Device  # noqa: E402

CLI = [sys.executable, "-m", "grizz_server"]


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def _worker_pid(log: Path, job: str, redis_url: str) -> int:
    """The pid of the worker running `job` (its consumer name names the child)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    owner = (client.hget(f"grizz:jobinfo:{job}", "owner") or b"").decode()
    client.close()
    parts = owner.split(":")
    if len(parts) == 3:  # before 2026-12: host:pid:random, the worker's own pid
        return int(parts[1])
    child = parts[2]  # host:launcher-pid:worker-N:random
    pids = [
        int(r["pid"])
        for r in map(json.loads, log.read_text().splitlines())
        if r.get("msg") == "process started" and r.get("child") == child
    ]
    return pids[-1]


async def _trial(port: int, token: str, log: Path) -> float:
    device = await Device(f"ws://127.0.0.1:{port}", token).connect()
    try:
        job = (await device.say("Tell me a long story.")).job_id
        await device.wait_for(lambda: device.frame(p.Chunk, job_id=job), timeout=30)
        redis_url = json.loads((log.parent.parent / "run.json").read_text())[
            "redis_url"
        ]
        os.kill(_worker_pid(log, job, redis_url), signal.SIGKILL)
        killed = time.perf_counter()
        await device.wait_for(lambda: device.frame(p.Restart, job_id=job), timeout=90)
        restarted = time.perf_counter() - killed
        reply = await device.finished(job, timeout=60)
        assert reply.done is not None
        return restarted
    finally:
        await device.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    fake = FakeOpenAI(default=Text("word " * 40, chunk=5, delay=0.1)).start()
    home = Path(tempfile.mkdtemp(prefix="grizz-bench-reclaim-"))
    env = {
        **os.environ,
        "GRIZZ_HOME": str(home),
        "OPENAI_BASE_URL": fake.base_url,
        "OPENAI_API_KEY": "sk-bench",
        "GRIZZ_SERVER_MODEL": "fake-model",
        "PYTHONPATH": str(ROOT),
    }
    run = lambda *a: subprocess.run(  # noqa: E731
        [*CLI, *a], env=env, capture_output=True, text=True, check=True
    )
    run("users", "add", "alice")
    token = run("tokens", "add", "alice", "--device", "bench").stdout.strip()
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "run", "--workers", str(args.workers), "--port", str(port)],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    log = home / "server" / "logs" / "launcher.log"
    figures: list[float] = []
    try:
        while not _healthy(port):
            time.sleep(0.1)
        for _ in range(args.trials):
            figures.append(asyncio.run(_trial(port, token, log)))
            while not _healthy(port):
                time.sleep(0.1)
            time.sleep(3)  # let the restarted worker warm up
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        fake.stop()
    print(
        f"kill -9 of the worker -> reply restarts: median "
        f"{statistics.median(figures):.2f} s, max {max(figures):.2f} s "
        f"({len(figures)} trials, {args.workers} workers; visibility 45 s)"
    )


if __name__ == "__main__":
    main()
