"""First-token latency added by the server path, vs calling the fake provider directly.

Two ways to put N streams in flight (default N = 1, 50, 200), each run
alternating round by round with the direct path to the same fake endpoint
(`OpenAICompatProvider.stream()`, request → first text delta). "Added" is
server minus direct at the same percentile. Real processes: redis-server,
the fake provider, one gateway, 2 workers (SQLite store).

- `--mode steady` (N concurrent streams): N devices (N users, one
  authenticated WebSocket each) each send, read the whole streamed reply
  (`--reply-ms` long), and send again after a random pause of up to a tenth
  of that, for `--seconds`; every send's send → first `chunk` frame counts.
  The loops start at random offsets within one reply, so about N replies are
  streaming at any moment and each new message arrives while the others
  stream, not in lockstep with them. The direct side runs N such loops of
  provider calls.
- `--mode burst`: the N devices send at the same instant, once per round, so
  the figure includes queueing behind the N-1 others on 2 shared cores.

    .venv/bin/python bench/server_latency.py [--mode steady|burst] [--levels 1,50,200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
import uuid

from server_common import Server, percentile
from websockets.asyncio.client import connect

from grizz_core import protocol as p
from grizz_core.providers.base import TextDelta
from grizz_core.providers.openai_compat import OpenAICompatProvider


async def direct_round(provider: OpenAICompatProvider, n: int) -> list[float]:
    async def one() -> float:
        start = time.perf_counter()
        first = float("nan")
        async for event in provider.stream([{"role": "user", "content": "hi"}]):
            if isinstance(event, TextDelta) and first != first:
                first = time.perf_counter() - start
        return first

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def server_round(devices: list, n: int) -> list[float]:
    return list(await asyncio.gather(*(_one_server(ws) for ws in devices[:n])))


def _pause(spread: float) -> float:
    """A random pause so the N loops don't send in lockstep (see `stagger`)."""
    return random.uniform(0, spread)


async def direct_steady(
    provider: OpenAICompatProvider, n: int, seconds: float, spread: float
) -> list[float]:
    deadline = time.perf_counter() + seconds

    async def loop() -> list[float]:
        firsts = []
        await asyncio.sleep(_pause(spread))
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            first = None
            async for event in provider.stream([{"role": "user", "content": "hi"}]):
                if isinstance(event, TextDelta) and first is None:
                    first = time.perf_counter() - start
            if first is not None:
                firsts.append(first)
            await asyncio.sleep(_pause(spread / 10))
        return firsts

    return [x for xs in await asyncio.gather(*(loop() for _ in range(n))) for x in xs]


async def server_steady(
    devices: list, n: int, seconds: float, spread: float
) -> list[float]:
    deadline = time.perf_counter() + seconds

    async def loop(ws) -> list[float]:
        firsts = []
        await asyncio.sleep(_pause(spread))
        while time.perf_counter() < deadline:
            firsts.append(await _one_server(ws))
            await asyncio.sleep(_pause(spread / 10))
        return firsts

    return [
        x for xs in await asyncio.gather(*(loop(ws) for ws in devices[:n])) for x in xs
    ]


async def _one_server(ws) -> float:
    message_id = str(uuid.uuid4())
    start = time.perf_counter()
    await ws.send(p.dump_frame(p.Send(text="hi", message_id=message_id)))
    first = None
    job = None
    while True:
        frame = p.parse_frame(await ws.recv())
        if isinstance(frame, p.Accepted):
            job = frame.job_id
        elif isinstance(frame, p.Chunk) and frame.job_id == job and first is None:
            first = time.perf_counter() - start
        elif isinstance(frame, p.Done) and frame.job_id == job:
            return first if first is not None else float("nan")
        elif isinstance(frame, p.Error):
            raise RuntimeError(frame.message)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("steady", "burst"), default="steady")
    parser.add_argument("--seconds", type=float, default=6.0, help="steady: per round")
    parser.add_argument(
        "--reply-ms", type=float, default=1000.0, help="steady: length of each reply"
    )
    parser.add_argument("--levels", default="1,50,200")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--db-url",
        default="",
        help="postgresql://… (a fresh database; default: SQLite)",
    )
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    text = "Hello there, friend! " * 3
    chunk = 8
    server = await Server(
        workers=args.workers,
        db_url=args.db_url,
        text=text,
        chunk=chunk,
        delay_ms=args.reply_ms / (len(text) / chunk) if args.mode == "steady" else 0,
        worker_concurrency=256,
        max_active_per_user=10,
        rate_burst=100_000,
        rate_per_minute=1e9,
        max_queue_depth=100_000,
    ).start(users=max(levels))
    provider = OpenAICompatProvider(
        base_url=server.fake_url,
        model="fake-model",
        api_key="sk-bench",
        max_retries=0,
        max_connections=max(levels),
    )
    devices = []
    try:
        for token in server.tokens:
            ws = await connect(
                f"ws://127.0.0.1:{server.port}",
                additional_headers={"Authorization": f"Bearer {token}"},
                open_timeout=30,
                ping_interval=None,
            )
            await ws.recv()  # welcome
            devices.append(ws)
        await server_round(devices, 1)  # warm up both paths
        await direct_round(provider, 1)
        results = {}
        for n in levels:
            direct: list[float] = []
            via: list[float] = []
            busy = dict.fromkeys([*server.cpu_seconds(), "client"], 0.0)
            server_time = 0.0
            for _ in range(args.rounds):
                if args.mode == "steady":
                    spread = args.reply_ms / 1000
                    direct += await direct_steady(provider, n, args.seconds, spread)
                else:
                    direct += await direct_round(provider, n)
                before, client, start = (
                    server.cpu_seconds(),
                    time.process_time(),
                    time.perf_counter(),
                )
                if args.mode == "steady":
                    via += await server_steady(devices, n, args.seconds, spread)
                else:
                    via += await server_round(devices, n)
                server_time += time.perf_counter() - start
                for name, used in server.cpu_seconds().items():
                    busy[name] += used - before[name]
                busy["client"] += time.process_time() - client
            row = {
                "mode": args.mode,
                "n": n,
                "samples": len(via),
                # share of one core each process used during the server rounds
                "cpu_cores": {k: round(v / server_time, 2) for k, v in busy.items()},
            }
            for q in (50, 99):
                d, s = percentile(direct, q) * 1000, percentile(via, q) * 1000
                row |= {
                    f"direct_p{q}_ms": round(d, 2),
                    f"server_p{q}_ms": round(s, 2),
                    f"added_p{q}_ms": round(s - d, 2),
                }
            results[n] = row
            print(json.dumps(row), flush=True)
    finally:
        for ws in devices:
            await ws.close()
        await provider.aclose()
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
