"""`grizz ask` through grizz-server vs direct, and live propagation between devices.

Everything runs as real processes on this machine (bench/server_common.py):
`redis-server`, the OpenAI-compatible fake, a gateway and one worker. Part 1
runs `grizz ask` as a fresh process N times in each mode, alternating: in a
home logged in to the server (the worker calls the fake) and in a home
without a server (`grizz ask` calls the same fake itself). It reports the
first reply byte on stdout and the exit, both from the process's start.

Part 2 (`--messages`): two device connections of one user (`SyncClient`, in
this process). Device A sends a message and waits for its reply; device B
records when its `job` frame and its `changed` (the message row) arrive,
and how far each reply `chunk` reaches B after A.

    python bench/sync_ask.py [--runs 30] [--messages 200]

Targets (issue 12): propagation p50 ≤ 10 ms, p99 ≤ 50 ms; chunks on B at
most 25 ms p99 behind A.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.server_common import Server, percentile  # noqa: E402
from grizz_core import protocol as p  # noqa: E402

REPLY = "Hey! I'm doing great, thanks for asking. " * 6


def _ask(home: Path, env: dict[str, str]) -> tuple[float, float]:
    """Run `grizz ask`: (seconds to the first stdout byte, seconds to exit)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "grizz_tui", "ask", "how are you?"],
        cwd=ROOT,
        env={**env, "GRIZZ_HOME": str(home)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    first = proc.stdout.read(1)
    first_at = time.perf_counter() - started
    rest = proc.stdout.read()
    proc.wait()
    total = time.perf_counter() - started
    out = (first + rest).decode()
    if proc.returncode != 0 or REPLY.strip() not in out:
        raise SystemExit(f"grizz ask failed: {proc.stderr.read().decode()[-400:]}")  # type: ignore[union-attr]
    return first_at, total


def _line(name: str, values: list[float]) -> str:
    return (
        f"{name:28s} p50 {percentile(values, 50) * 1000:8.1f} ms"
        f"   p95 {percentile(values, 95) * 1000:8.1f} ms"
        f"   p99 {percentile(values, 99) * 1000:8.1f} ms"
    )


def ask_runs(server: Server, runs: int) -> None:
    base = {k: v for k, v in server.env().items() if not k.startswith("GRIZZ_SERVER")}
    base |= {"OPENAI_BASE_URL": server.fake_url, "GRIZZ_MODEL": "fake-model"}
    synced = Path(tempfile.mkdtemp(prefix="grizz-synced-"))
    direct = Path(tempfile.mkdtemp(prefix="grizz-direct-"))
    login = subprocess.run(
        [sys.executable, "-m", "grizz_tui", "login", f"ws://127.0.0.1:{server.port}"],
        cwd=ROOT,
        env={**base, "GRIZZ_HOME": str(synced)},
        input=server.tokens[0] + "\n",
        capture_output=True,
        text=True,
    )
    assert login.returncode == 0, login.stderr
    _ask(synced, base), _ask(direct, base)  # warm the page cache
    times: dict[str, list[tuple[float, float]]] = {"server": [], "direct": []}
    for n in range(runs):
        order = [("server", synced), ("direct", direct)]
        for name, home in order if n % 2 == 0 else order[::-1]:
            times[name].append(_ask(home, base))
    for name, pairs in times.items():
        print(_line(f"{name}: first reply byte", [a for a, _ in pairs]))
        print(_line(f"{name}: exit", [b for _, b in pairs]))
    for q in (50, 95):
        firsts = [percentile([a for a, _ in times[k]], q) for k in ("server", "direct")]
        totals = [percentile([b for _, b in times[k]], q) for k in ("server", "direct")]
        print(
            f"added by the server, p{q}: first byte "
            f"{(firsts[0] - firsts[1]) * 1000:+.1f} ms, "
            f"total {(totals[0] - totals[1]) * 1000:+.1f} ms"
        )


async def propagation(server: Server, messages: int) -> None:
    from grizz_tui.sync.client import SyncClient

    url = f"ws://127.0.0.1:{server.port}"
    a, b = SyncClient(url, server.tokens[0]), SyncClient(url, server.tokens[0])
    await a.open()
    await b.open()
    seen_job: dict[str, float] = {}
    seen_changed: dict[str, float] = {}
    chunk_a: dict[tuple[str, str], float] = {}
    chunk_b: dict[tuple[str, str], float] = {}
    done: dict[str, asyncio.Event] = {}

    def on_a(frame: p.Frame | None) -> None:
        if isinstance(frame, p.Chunk):
            chunk_a[(frame.job_id, frame.entry)] = time.perf_counter()
        elif isinstance(frame, p.Done | p.Error):
            done.setdefault(frame.job_id, asyncio.Event()).set()

    def on_b(frame: p.Frame | None) -> None:
        now = time.perf_counter()
        if isinstance(frame, p.Job):
            seen_job[frame.message_id] = now
        elif isinstance(frame, p.Changed):
            for change in frame.changes:
                seen_changed.setdefault(change["id"], now)
        elif isinstance(frame, p.Chunk):
            chunk_b[(frame.job_id, frame.entry)] = now

    a.add_listener(on_a)
    b.add_listener(on_b)
    sent: dict[str, float] = {}
    try:
        for n in range(messages):
            message_id = str(uuid.uuid4())
            sent[message_id] = time.perf_counter()
            accepted = await a.request(
                p.Send(text=f"message {n}", message_id=message_id), p.Accepted
            )
            event = done.setdefault(accepted.job_id, asyncio.Event())
            await asyncio.wait_for(event.wait(), 30)
        await asyncio.sleep(0.5)  # B's last frames
    finally:
        await a.close()
        await b.close()
    job_lag = [seen_job[m] - t for m, t in sent.items() if m in seen_job]
    changed_lag = [seen_changed[m] - t for m, t in sent.items() if m in seen_changed]
    chunk_lag = [chunk_b[k] - t for k, t in chunk_a.items() if k in chunk_b]
    print(
        f"{messages} messages: job on B {len(job_lag)}, changed on B {len(changed_lag)}"
    )
    print(_line("send on A -> job on B", job_lag))
    print(_line("send on A -> changed on B", changed_lag))
    print(_line(f"chunk B behind A ({len(chunk_lag)})", chunk_lag))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--messages", type=int, default=200)
    args = parser.parse_args()
    server = await Server(
        workers=1,
        text=REPLY,
        chunk=8,
        delay_ms=2.0,  # ~30 chunks over ~60 ms: several chunks per reply
        rate_burst=10_000,
        rate_per_minute=1_000_000,
    ).start(users=1)
    try:
        if args.runs:
            ask_runs(server, args.runs)
        if args.messages:
            await propagation(server, args.messages)
    finally:
        server.stop()
    print(f"load average: {os.getloadavg()}")


if __name__ == "__main__":
    asyncio.run(main())
