"""The seeds' design vs ours: one shared result stream vs per-job output streams.

G replies stream at once, C chunks each, interleaved. One gateway wants the
chunks of ONE of them. Seeds' design: every chunk of every reply goes to one
shared stream, and the gateway reads it all and keeps entries whose client id
matches. Ours: each reply has its own stream (`grizz:job:{id}`) and the
gateway reads only the keys it follows. Same Redis, same data, same run: the
chunks are written first, then the reader is timed (its CPU only) while it
collects its one reply.

    .venv/bin/python bench/server_shared_stream.py [--chunks 50] \
        [--levels 1,50,200,1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from server_common import ROOT  # noqa: F401  (puts the repo on sys.path)

from grizz_server.redis_server import RedisProcess


async def produce(redis, g: int, chunks: int, shared: bool) -> None:  # type: ignore[no-untyped-def]
    for c in range(chunks):
        pipe = redis.pipeline(transaction=False)
        for job in range(g):
            key = "seeds:results" if shared else f"grizz:job:bench-{job}"
            pipe.xadd(key, {"client": f"c{job}", "t": f"chunk {c} "})
        await pipe.execute()


async def consume(redis, shared: bool, chunks: int) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    key = "seeds:results" if shared else "grizz:job:bench-0"
    last, got, scanned = "0", 0, 0
    cpu = time.process_time()
    while got < chunks:
        reply = await redis.xread({key: last}, count=1000, block=1000)
        for _, entries in reply or []:
            for entry_id, fields in entries:
                last = entry_id
                scanned += 1
                if fields[b"client"] == b"c0":
                    got += 1
    return scanned, time.process_time() - cpu


async def main() -> None:
    from redis.asyncio import Redis

    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=50)
    parser.add_argument("--levels", default="1,50,200,1000")
    args = parser.parse_args()
    proc = RedisProcess(Path(tempfile.mkdtemp()), persist=False).start()
    producer, reader = Redis.from_url(proc.url), Redis.from_url(proc.url)
    try:
        for g in (int(x) for x in args.levels.split(",")):
            row: dict[str, object] = {"concurrent_replies": g}
            for shared in (True, False):
                await producer.flushdb()
                await produce(producer, g, args.chunks, shared)
                scanned, cpu = await consume(reader, shared, args.chunks)
                name = "shared" if shared else "per_job"
                row[f"{name}_entries_read"] = scanned
                row[f"{name}_reader_cpu_ms"] = round(cpu * 1000, 1)
            print(json.dumps(row), flush=True)
    finally:
        await producer.aclose()
        await reader.aclose()
        proc.stop()


if __name__ == "__main__":
    asyncio.run(main())
