"""Jobs per second end to end, 2 workers, an instantly answering fake endpoint.

U users (one WebSocket each) send M messages each, all at once; the clock
runs from the first `send` to the last `done`. Every job is the full path:
gateway stores the message and queues the job, a worker streams the reply
from the fake provider, stores it and acks, the gateway forwards the chunks.
`--profile` runs the workers under cProfile and prints where their time goes.

    .venv/bin/python bench/server_throughput.py [--users 50] [--messages 20] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pstats
import sys
import time
import uuid
from pathlib import Path

from server_common import Server
from websockets.asyncio.client import connect

from grizz_core import protocol as p


async def device(url: str, token: str, messages: int) -> int:
    async with connect(
        url,
        additional_headers={"Authorization": f"Bearer {token}"},
        open_timeout=60,
        ping_interval=None,
        max_size=2**24,
    ) as ws:
        await ws.recv()  # welcome
        for i in range(messages):
            await ws.send(
                p.dump_frame(p.Send(text=f"message {i}", message_id=str(uuid.uuid4())))
            )
        done = 0
        while done < messages:
            frame = p.parse_frame(await ws.recv())
            if isinstance(frame, p.Done):
                done += 1
            elif isinstance(frame, p.Error):
                raise RuntimeError(f"{frame.code}: {frame.message}")
        return done


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--db-url",
        default="",
        help="postgresql://… (a fresh database; default: SQLite)",
    )
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    server = Server(
        workers=args.workers,
        db_url=args.db_url,
        text="Hi!",
        chunk=8,
        worker_concurrency=64,
        max_active_per_user=100_000,
        rate_burst=100_000,
        rate_per_minute=1e9,
        max_queue_depth=1_000_000,
    )
    if args.profile:
        server.profile_dir = server.home / "prof"  # type: ignore[attr-defined]
    await server.start(users=args.users)
    url = f"ws://127.0.0.1:{server.port}"
    try:
        cpu_before = server.cpu_seconds()
        client_before = time.process_time()
        start = time.perf_counter()
        counts = await asyncio.gather(
            *(device(url, t, args.messages) for t in server.tokens)
        )
        elapsed = time.perf_counter() - start
        cpu = {
            name: round((used - cpu_before[name]) * 1000 / sum(counts), 3)
            for name, used in server.cpu_seconds().items()
        }
        cpu["client"] = round(
            (time.process_time() - client_before) * 1000 / sum(counts), 3
        )
        jobs = sum(counts)
        print(
            json.dumps(
                {
                    "users": args.users,
                    "jobs": jobs,
                    "workers": args.workers,
                    "seconds": round(elapsed, 2),
                    "jobs_per_s": round(jobs / elapsed, 1),
                    "cpu_ms_per_job": cpu,
                }
            ),
            flush=True,
        )
    finally:
        server.stop()
    if args.profile:
        for path in sorted(Path(server.home / "prof").glob("*.prof")):
            print(f"--- {path.name}: top cumulative", file=sys.stderr)
            stats = pstats.Stats(str(path), stream=sys.stderr)
            stats.sort_stats("tottime").print_stats(18)
            stats.sort_stats("cumulative").print_stats("grizz_server|grizz_tui", 25)


if __name__ == "__main__":
    asyncio.run(main())
