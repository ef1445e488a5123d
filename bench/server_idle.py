"""Idle authenticated WebSocket connections on one gateway process, memory each.

Opens N connections (Authorization header, `welcome` received, then idle) to
one `grizz-server gateway` process and reads the gateway's RSS from /proc
before and after. Compression is off and TLS belongs to a proxy, as deployed.

    .venv/bin/python bench/server_idle.py [--connections 10000] [--batch 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time

from server_common import Server, rss_kib
from websockets.asyncio.client import connect


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--users", type=int, default=100)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    server = await Server(
        workers=0, text="Hi", chunk=8, idle_timeout_s=3600.0, ping_interval_s=60.0
    ).start(users=args.users)
    url = f"ws://127.0.0.1:{server.port}"
    sockets = []
    try:
        await asyncio.sleep(1.0)
        before = rss_kib(server.gateway_pid)
        start = time.perf_counter()

        async def one(i: int):  # type: ignore[no-untyped-def]
            token = server.tokens[i % len(server.tokens)]
            ws = await connect(
                url,
                additional_headers={"Authorization": f"Bearer {token}"},
                open_timeout=120,
                ping_interval=None,
                compression=None,
            )
            await ws.recv()  # welcome
            return ws

        for first in range(0, args.connections, args.batch):
            batch = range(first, min(args.connections, first + args.batch))
            sockets += await asyncio.gather(*(one(i) for i in batch))
        opened = time.perf_counter() - start
        await asyncio.sleep(2.0)
        after = rss_kib(server.gateway_pid)
        print(
            json.dumps(
                {
                    "connections": len(sockets),
                    "open_seconds": round(opened, 1),
                    "gateway_rss_before_mib": round(before / 1024, 1),
                    "gateway_rss_after_mib": round(after / 1024, 1),
                    "kib_per_connection": round(
                        (after - before) / max(1, len(sockets)), 1
                    ),
                }
            ),
            flush=True,
        )
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
