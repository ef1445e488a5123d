"""The shared plumbing of `ServerStore` and `UserStore`: connections,
transactions, error translation and the per-user change counter.

Store code sees one interface on both back ends: `read()`, `snapshot()` and
`write()` yield a connection with `await conn.execute(statement, params)` and
`await conn.run_sync(fn)`, and `await conn.run(statement, params)` for prebuilt
statements run straight on the driver. `PostgresBackend`
(`postgres_backend.py`) uses asyncpg through SQLAlchemy's async engine;
`SqliteBackend` (`sqlite_backend.py`) runs the same statements inline on the
event loop (see `engine.py` for why).

Every write to a user's rows runs in one transaction that first takes the next
number(s) of that user's change sequence (`users.seq`) with
`UPDATE … RETURNING`, which also locks the user's row on PostgreSQL: writes of
one user are serialised and commit in sequence order, so a reader never sees
seq 12 before seq 11 (on SQLite, BEGIN IMMEDIATE serialises all writers).
A write that turns out to change nothing raises `Discard`, which rolls back
and so gives the number back: the sequence stays gap-free.

Must not import: the concrete back ends (`factory.py` picks one), the core,
the provider, websockets, redis.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import asyncpg
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.engine import Dialect, Result
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from grizz_core.errors import StoreError

from . import statements as q
from .engine import Target, describe
from .recent import Windows

DRIVER_ERRORS: tuple[type[Exception], ...] = (
    sqlite3.Error,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)
"""Errors of the raw `fetch`/`run` path, which SQLAlchemy does not wrap."""
DRIVER_DATA_ERRORS: tuple[type[Exception], ...] = (
    sqlite3.IntegrityError,
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.DataError,
)


class RejectedData(StoreError):
    """The database refused a value or a constraint (bad or conflicting data)."""


class Discard(Exception):
    """Raised inside `StoreBackend.write()` to roll back a write that changed
    nothing."""


class Conn(Protocol):
    """What store code may do with a connection, on either back end."""

    @property
    def dialect(self) -> Dialect: ...

    async def execute(self, statement: Any, parameters: Any = None) -> Result[Any]: ...

    async def run_sync(self, fn: Callable[..., Any], *args: Any) -> Any: ...

    async def run(self, statement: Any, params: dict[str, Any]) -> Raw:
        """Run a prebuilt statement straight on the driver, in this transaction."""
        ...

    async def run_many(self, statement: Any, rows: list[dict[str, Any]]) -> None:
        """`run` once per parameter dict (executemany)."""
        ...


@functools.cache
def compiled(
    statement: Any, dialect: str
) -> tuple[str, tuple[str, ...], dict[str, Any]]:
    """(SQL text, positional parameter names, literal parameter values) of a
    prebuilt statement for `dialect`."""
    engine_dialect: Dialect = (
        sqlite.dialect() if dialect == "sqlite" else asyncpg_dialect()  # type: ignore[no-untyped-call]
    )
    done = statement.compile(dialect=engine_dialect)
    literals = {name: bind.effective_value for name, bind in done.binds.items()}
    return str(done), tuple(done.positiontup or ()), literals


def bind_arguments(
    statement: Any, dialect: str, params: dict[str, Any]
) -> tuple[str, list[Any]]:
    sql, names, literals = compiled(statement, dialect)
    return sql, [params[n] if n in params else literals[n] for n in names]


@functools.cache
def returns_rows(sql: str) -> bool:
    words = sql.split()
    return words[0].upper() == "SELECT" or "RETURNING" in words


class Raw:
    """The result of `Conn.run`: fetched rows (tuples) and the affected row count."""

    __slots__ = ("rowcount", "rows")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self.rows = rows
        self.rowcount = rowcount

    def first(self) -> Any:
        return self.rows[0] if self.rows else None

    def scalar(self) -> Any:
        return self.rows[0][0] if self.rows else None


class StoreBackend:
    """Connections to one database plus the helpers every store method uses."""

    dialect: str

    def __init__(self, target: Target) -> None:
        self.target = target
        self.dialect = target.dialect
        self.known_days: set[tuple[str, str]] = set()
        """(user_id, day) pairs whose conversation is known to exist."""
        self.rows = q.RowCache()
        """Messages and notes already built from fetched rows (see `RowCache`)."""
        self.windows = Windows()
        """Each conversation's newest messages, caught up by seq (`recent.py`)."""

    def read(self) -> contextlib.AbstractAsyncContextManager[Conn]:
        """A connection for single-statement reads (autocommit)."""
        raise NotImplementedError

    def snapshot(self) -> contextlib.AbstractAsyncContextManager[Conn]:
        """A read transaction: every statement sees the same snapshot."""
        raise NotImplementedError

    def write(self) -> contextlib.AbstractAsyncContextManager[Conn]:
        """One write transaction; `raise Discard` inside it to roll back quietly."""
        raise NotImplementedError

    async def dispose(self) -> None:
        raise NotImplementedError

    async def settle(self) -> None:
        """Wait until this process's writes in flight are committed (or failed).

        Reads see only committed data; a write that found a row already there
        may have found one that another writer of this process has not
        committed yet (SQLite's group commit). Nothing to wait for otherwise.
        """

    async def fetch(self, statement: Any, params: dict[str, Any]) -> list[Any]:
        """Run a prebuilt SELECT straight on the driver; rows as tuples.

        The hot reads (a worker's context: up to hundreds of messages per job)
        skip SQLAlchemy's per-row Result machinery, which costs several times
        the query itself. The SQL is still SQLAlchemy's, compiled once per
        dialect (`compiled`), so both back ends run the same statement.
        """
        raise NotImplementedError

    @contextlib.asynccontextmanager
    async def translated(self) -> AsyncIterator[None]:
        """Driver and network errors become a one-sentence `StoreError`."""
        try:
            yield
        except (StoreError, Discard):
            raise
        except (IntegrityError, DataError) as exc:
            raise RejectedData(describe(self.target, exc)) from exc
        except DRIVER_DATA_ERRORS as exc:
            raise RejectedData(describe(self.target, exc)) from exc
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            raise StoreError(describe(self.target, exc)) from exc
        except DRIVER_ERRORS as exc:
            raise StoreError(describe(self.target, exc)) from exc

    async def take_seq(self, conn: Conn, user_id: str, count: int = 1) -> int:
        """Reserve `count` change numbers for `user_id`; return the last one.

        The reserved numbers are `last - count + 1 … last`.

        Raises:
            StoreError: there is no such user.
        """
        last = (await conn.run(q.take_seq, {"k_uid": user_id, "k_n": count})).scalar()
        if last is None:
            raise StoreError(f"There is no user with id {user_id}.")
        return int(last)

    async def lock_seq(self, conn: Conn, user_id: str) -> int:
        """Lock the user's counter for this transaction; return its current value."""
        current = (await conn.run(q.lock_seq, {"k_uid": user_id})).scalar()
        if current is None:
            raise StoreError(f"There is no user with id {user_id}.")
        return int(current)

    async def set_seq(self, conn: Conn, user_id: str, value: int) -> None:
        await conn.run(q.set_seq, {"k_uid": user_id, "k_seq": value})
