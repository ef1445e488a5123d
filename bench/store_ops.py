"""The server store's cost per chat job, side by side with the device's local store.

One "job" is the store work of one message through grizz-server with an
instantly answering model: the gateway stores the user's message
(`ensure_day`, `add_message`), the worker runs `ChatSession.respond`'s store
calls (`start_reply`, `recent_messages`, `previous_day`, `relevant_memories`,
`attachments_of`, the final `update_message`, `get_message`). The same calls
run against:

- `local`: the device's `LocalChatStore` (sqlite-utils, inline) — the peer;
- `server-sqlite`: `ServerStore` on SQLite (SQLAlchemy Core, sqlite3 inline);
- `server-pg`: `ServerStore` on PostgreSQL (SQLAlchemy async + asyncpg).

Each user's day holds `--history` earlier messages, so `recent_messages`
reads a realistic page. Jobs run `--concurrency` at a time in one process,
spread over as many users. Reported: jobs/s (wall) and CPU ms per job of this
process (PostgreSQL's own CPU is not in it). Also measured: one point read
through aiosqlite (a thread hop per call) vs sqlite3 inline, the reason the
SQLite back end runs inline.

    .venv/bin/python bench/store_ops.py --jobs 2000 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

from grizz_core.domain import Role, Status
from grizz_server.store import ServerStore
from grizz_tui.store.db import open_database
from grizz_tui.store.local import LocalChatStore

DAY, YESTERDAY = "2026-11-23", "2026-11-22"
PG_ADMIN = os.environ.get("GRIZZ_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")


async def one_job(store: Any, conv: str, n: int) -> None:
    await store.ensure_day(DAY, "UTC")
    question = await store.add_message(
        conversation_id=conv,
        role=Role.USER,
        content=f"how was my day {n}?",
        message_id=str(uuid.uuid4()),
    )
    reply = await store.start_reply(
        reply_id=str(uuid.uuid4()),
        conversation_id=conv,
        model="fake",
        metadata={"reply_to": question.id},
    )
    await store.recent_messages(conv, limit=400, exclude=(question.id, reply.id))
    await store.previous_day(DAY)
    await store.relevant_memories(question.content, limit=40)
    await store.attachments_of(question.id)
    await store.update_message(
        reply.id,
        content="Sounds like a good one!",
        status=Status.COMPLETE,
        metadata={"finish_reason": "stop", "usage": {"total_tokens": 15}},
    )
    await store.get_message(reply.id)


async def prepare(store: Any, history: int) -> str:
    old = await store.ensure_day(YESTERDAY, "UTC")
    conv = await store.ensure_day(DAY, "UTC")
    for i in range(history):
        await store.add_message(
            conversation_id=conv if i % 4 else old,
            role=Role.USER if i % 2 else Role.ASSISTANT,
            content=f"an earlier line of chat number {i}",
        )
    for i in range(20):
        await store.remember(f"note {i} about the day and tea", title=f"n{i}")
    return conv


async def run(stores: list[tuple[Any, str]], jobs: int) -> tuple[float, float]:
    per_task = jobs // len(stores)

    async def task(store: Any, conv: str) -> None:
        for n in range(per_task):
            await one_job(store, conv, n)

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(task(s, c) for s, c in stores))
    done = per_task * len(stores)
    return done / (time.perf_counter() - wall), (time.process_time() - cpu) / done * 1e3


async def local_stores(tmp: Path, users: int, history: int) -> list[tuple[Any, str]]:
    out = []
    for k in range(users):  # the local store is one user per file
        store = LocalChatStore(open_database(tmp / f"local{k}.db"))
        out.append((store, await prepare(store, history)))
    return out


async def server_stores(
    server: ServerStore, users: int, history: int
) -> list[tuple[Any, str]]:
    out = []
    for _ in range(users):
        user = await server.add_user(f"u{uuid.uuid4().hex[:10]}")
        store = server.for_user(user.id)
        out.append((store, await prepare(store, history)))
    return out


async def point_reads(path: Path, n: int = 3000) -> tuple[float, float]:
    """µs per single-row SELECT: aiosqlite (thread hop) vs sqlite3 inline."""
    import sqlite3

    import aiosqlite

    sql = "SELECT seq FROM users WHERE id = ?"
    async with aiosqlite.connect(path) as db:
        started = time.perf_counter()
        for _ in range(n):
            async with db.execute(sql, ("x",)) as cursor:
                await cursor.fetchall()
        hop = (time.perf_counter() - started) / n * 1e6
    conn = sqlite3.connect(path)
    started = time.perf_counter()
    for _ in range(n):
        conn.execute(sql, ("x",)).fetchall()
    inline = (time.perf_counter() - started) / n * 1e6
    conn.close()
    return hop, inline


async def main(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="grizz-store-bench-"))
    name = f"grizz_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    pg_url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    try:
        targets: dict[str, Callable[[], Awaitable[tuple[list[Any], Any]]]] = {}

        async def local() -> tuple[list[Any], Any]:
            return await local_stores(tmp, args.concurrency, args.history), None

        async def server(url: str) -> tuple[list[Any], Any]:
            opened = await ServerStore.open(url, pool_size=args.concurrency)
            return await server_stores(opened, args.concurrency, args.history), opened

        targets["local"] = local
        targets["server-sqlite"] = lambda: server(f"sqlite:///{tmp / 'server.db'}")
        targets["server-pg"] = lambda: server(pg_url)
        prepared = {label: await make() for label, make in targets.items()}
        results: dict[str, list[tuple[float, float]]] = {k: [] for k in prepared}
        for _ in range(args.rounds):  # interleaved, so load changes hit all alike
            for label, (stores, _) in prepared.items():
                results[label].append(await run(stores, args.jobs))
        print(
            f"jobs={args.jobs} concurrency={args.concurrency} history={args.history} "
            f"rounds={args.rounds} (best round shown)"
        )
        base = max(r[0] for r in results["local"])
        for label, rounds in results.items():
            rate = max(r[0] for r in rounds)
            cpu = min(r[1] for r in rounds)
            print(
                f"{label:14s} {rate:8.0f} jobs/s  {cpu:6.2f} CPU ms/job  "
                f"{rate / base:5.2f}x local"
            )
        hop, inline = await point_reads(tmp / "server.db")
        print(
            f"point read: aiosqlite {hop:.0f} µs, sqlite3 inline {inline:.0f} µs "
            f"({hop / inline:.1f}x)"
        )
        for _, opened in prepared.values():
            if opened is not None:
                await opened.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--history", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
