"""Fixtures for the server-store tests: each test runs on SQLite and real PostgreSQL.

PostgreSQL is the one on 127.0.0.1:5432 (user `postgres` or `root`, trust
auth; `GRIZZ_TEST_PG_URL` overrides it). Each test session (each xdist
worker) creates its own uniquely named database and drops it at the end, and
every test starts from an empty `public` schema, so runs never collide.
If PostgreSQL cannot be reached the PostgreSQL half of the suite errors: it is
not skipped.

`store_url` is the one store-URL fixture of the suite: the store tests, the
admin commands and `any_db_stack` all take it. `tests/server/conftest.py`
re-exports these fixtures to every server test.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from grizz_server.store import ServerStore, UserStore

__all__ = [
    "pg_database",
    "pg_server",
    "store",
    "store_url",
    "two_users",
]

_CANDIDATES = (
    "postgresql://postgres@127.0.0.1:5432/test",
    "postgresql://root@127.0.0.1:5432/test",
)


async def _first_reachable() -> str:
    candidates = (
        [os.environ["GRIZZ_TEST_PG_URL"]] if "GRIZZ_TEST_PG_URL" in os.environ else []
    )
    errors: list[str] = []
    for dsn in [*candidates, *_CANDIDATES]:
        try:
            conn = await asyncpg.connect(dsn, timeout=5)
        except (OSError, asyncpg.PostgresError) as exc:
            errors.append(f"{dsn}: {exc}")
            continue
        await conn.close()
        return dsn
    raise RuntimeError("No PostgreSQL for the store tests: " + "; ".join(errors))


async def _admin(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_server() -> str:
    """A DSN of the maintenance database `test` that accepts CREATE DATABASE."""
    return asyncio.run(_first_reachable())


@pytest.fixture(scope="session")
def pg_database(pg_server: str) -> Iterator[str]:
    """The URL of a database made for this test session, dropped afterwards."""
    name = f"grizz_store_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(pg_server, f'CREATE DATABASE "{name}"'))
    try:
        yield pg_server.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(_admin(pg_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database, on SQLite and then on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'server.db'}"
    url: str = request.getfixturevalue("pg_database")
    asyncio.run(_admin(url, "DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    return url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[ServerStore]:
    """A freshly migrated `ServerStore` on `store_url`."""
    opened = await ServerStore.open(store_url)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def two_users(store: ServerStore) -> tuple[UserStore, UserStore]:
    """Stores of two users, alice and bob."""
    alice = await store.add_user("alice")
    bob = await store.add_user("bob")
    return store.for_user(alice.id), store.for_user(bob.id)
