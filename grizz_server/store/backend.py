"""The shared plumbing of `ServerStore` and `UserStore`: pooled connections,
transactions, error translation and the per-user change counter.

Every write to a user's rows runs in one transaction that first takes the next
number(s) of that user's change sequence (`users.seq`) with
`UPDATE … RETURNING`, which also locks the user's row on PostgreSQL: writes of
one user are serialised and commit in sequence order, so a reader never sees
seq 12 before seq 11 (on SQLite, BEGIN IMMEDIATE serialises all writers).
A write that turns out to change nothing raises `Discard`, which rolls back
and so gives the number back: the sequence stays gap-free.

Must not import: the core, the provider, websockets, redis.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from grizz_tui.errors import StoreError

from .engine import Target, describe
from .schema import users


class RejectedData(StoreError):
    """The database refused a value or a constraint (bad or conflicting data)."""


class Discard(Exception):
    """Raised inside `Backend.write()` to roll back a write that changed nothing."""


class Backend:
    """An engine with its reader/writer/snapshot views and the helpers on top."""

    def __init__(self, target: Target, engine: AsyncEngine) -> None:
        from .engine import views

        self.target = target
        self.engine = engine
        self.dialect = target.dialect
        self.reader, self.writer = views(engine, target.dialect)
        self.snapshotter = (
            engine.execution_options(isolation_level="REPEATABLE READ")
            if target.dialect == "postgresql"
            else engine
        )
        self.known_days: set[tuple[str, str]] = set()
        """(user_id, day) pairs whose conversation is known to exist."""

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A pooled connection for single-statement reads (autocommit)."""
        async with self._translated(), self.reader.connect() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[AsyncConnection]:
        """A read transaction: every statement sees the same snapshot."""
        async with self._translated(), self.snapshotter.begin() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction; `raise Discard` inside it to roll back quietly."""
        try:
            async with self._translated(), self.writer.begin() as conn:
                yield conn
        except Discard:
            pass

    @contextlib.asynccontextmanager
    async def _translated(self) -> AsyncIterator[None]:
        try:
            yield
        except (StoreError, Discard):
            raise
        except (IntegrityError, DataError) as exc:
            raise RejectedData(describe(self.target, exc)) from exc
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            raise StoreError(describe(self.target, exc)) from exc

    def insert(self, table: Table) -> Any:
        """An INSERT that supports `on_conflict_do_nothing/update` on both back ends."""
        if self.dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    async def take_seq(
        self, conn: AsyncConnection, user_id: str, count: int = 1
    ) -> int:
        """Reserve `count` change numbers for `user_id`; return the last one.

        The reserved numbers are `last - count + 1 … last`.

        Raises:
            StoreError: there is no such user.
        """
        result = await conn.execute(
            update(users)
            .where(users.c.id == user_id)
            .values(seq=users.c.seq + count)
            .returning(users.c.seq)
        )
        last = result.scalar()
        if last is None:
            raise StoreError(f"There is no user with id {user_id}.")
        return int(last)

    async def lock_seq(self, conn: AsyncConnection, user_id: str) -> int:
        """Lock the user's counter for this transaction; return its current value."""
        result = await conn.execute(
            select(users.c.seq).where(users.c.id == user_id).with_for_update()
        )
        current = result.scalar()
        if current is None:
            raise StoreError(f"There is no user with id {user_id}.")
        return int(current)

    async def set_seq(self, conn: AsyncConnection, user_id: str, value: int) -> None:
        await conn.execute(update(users).where(users.c.id == user_id).values(seq=value))
