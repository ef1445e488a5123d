"""Live propagation: a message stored on device A, applied and handed to the
app's screen on device B.

The server (Redis, gateway, one worker, the fake provider; SQLite store) runs
as real processes. A and B are two `LiveSync` links (the app's connection,
each with its own SQLite file) of one user, in this process, over loopback.
Each round A submits a message (stored on A, then `send`); the time runs from
just before A stores it to the moment B's link has applied the row to B's
database and hands it to the UI (`rows_applied`). The next round starts once
B has seen the reply finish, so no job queue builds up.

    python bench/live_propagation.py [--rounds 300]

Target (issue 12): p50 ≤ 10 ms, p99 ≤ 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.server_common import Server, percentile  # noqa: E402
from grizz_core import days  # noqa: E402
from grizz_tui.store.db import open_database  # noqa: E402
from grizz_tui.sync.client import SyncClient  # noqa: E402
from grizz_tui.sync.live import LinkState, LiveSync  # noqa: E402
from grizz_tui.sync.reply import JobRef, ReplyUpdate  # noqa: E402


class Recorder:
    """A `LiveListener` that notes when rows and reply ends arrive."""

    def __init__(self) -> None:
        self.connected = asyncio.Event()
        self.seen: dict[str, float] = {}
        self.done: dict[str, asyncio.Event] = {}

    def state_changed(self, state: LinkState) -> None:
        if state.connected:
            self.connected.set()

    def rows_applied(self, changes: list[dict[str, Any]]) -> None:
        now = time.perf_counter()
        for change in changes:
            self.seen.setdefault(change["id"], now)

    def reply_updated(self, job: JobRef, update: ReplyUpdate, *, own: bool) -> None:
        if update.kind in ("done", "error"):
            self.done.setdefault(job.message_id, asyncio.Event()).set()

    def delivered(self, message: Any) -> None:
        pass


async def _token(server: Server, device: str) -> str:
    from grizz_server.store import ServerStore

    store = await ServerStore.open(server.db_url)
    try:
        token, _ = await store.add_token("user0", device)
        return token
    finally:
        await store.close()


async def _link(url: str, token: str, home: Path) -> tuple[LiveSync, Recorder]:
    recorder = Recorder()
    db = open_database(home / "grizz.db")
    return LiveSync(SyncClient(url, token), db, recorder), recorder


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    server = await Server(
        workers=1, text="ok", chunk=2, rate_per_minute=100_000, rate_burst=100_000
    ).start(users=1)
    stop = asyncio.Event()
    try:
        url = f"ws://127.0.0.1:{server.port}"
        tokens = [server.tokens[0], await _token(server, "bench-b")]
        homes = [Path(tempfile.mkdtemp(prefix=f"grizz-{n}-")) for n in "ab"]
        (a, _), (b, seen) = [
            await _link(url, t, h) for t, h in zip(tokens, homes, strict=True)
        ]
        tasks = [asyncio.create_task(link.run(stop)) for link in (a, b)]
        await asyncio.wait_for(seen.connected.wait(), 10)
        for _ in range(1000):
            if a.state.connected:
                break
            await asyncio.sleep(0.01)
        day, latencies = days.today(), []
        for i in range(args.rounds):
            started = time.perf_counter()
            sent = await a.submit(f"round {i}", day=day, tz="UTC", direct=False)
            message_id = sent.message.id
            done = seen.done.setdefault(message_id, asyncio.Event())
            await asyncio.wait_for(done.wait(), 10)
            latencies.append((seen.seen[message_id] - started) * 1000)
        print(
            f"{args.rounds} messages A → B: p50 {percentile(latencies, 50):.2f} ms, "
            f"p99 {percentile(latencies, 99):.2f} ms, "
            f"mean {statistics.fmean(latencies):.2f} ms, max {max(latencies):.2f} ms"
        )
        stop.set()
        await asyncio.gather(*tasks)
        for link in (a, b):
            link.db.close()
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
