"""The shared plumbing of `ServerStore` and `UserStore`: connections,
transactions, error translation and the per-user change counter.

Store code sees one interface on both back ends: `read()`, `snapshot()` and
`write()` yield a connection with `await conn.execute(statement, params)` and
`await conn.run_sync(fn)`. `PostgresBackend` hands out SQLAlchemy async
connections (asyncpg); `SqliteBackend` runs the same statements inline on the
event loop (see `engine.py` for why).

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

import asyncio
import contextlib
import functools
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol

import asyncpg
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.engine import Connection, Dialect, Engine, Result
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from grizz_tui.errors import StoreError

from . import statements as q
from .engine import (
    READ_BUSY_TIMEOUT_MS,
    Target,
    create_postgres_engine,
    create_sqlite_engine,
    describe,
)

log = logging.getLogger(__name__)

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
CHECKPOINT_EVERY = 500
"""Commits (per process) between WAL checkpoints on SQLite."""
LOCK_WAIT_S = 30.0
"""How long a SQLite writer waits for another process's write lock."""


class RejectedData(StoreError):
    """The database refused a value or a constraint (bad or conflicting data)."""


class Discard(Exception):
    """Raised inside `Backend.write()` to roll back a write that changed nothing."""


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


def _arguments(
    statement: Any, dialect: str, params: dict[str, Any]
) -> tuple[str, list[Any]]:
    sql, names, literals = compiled(statement, dialect)
    return sql, [params[n] if n in params else literals[n] for n in names]


@functools.cache
def _returns_rows(sql: str) -> bool:
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


class Backend:
    """Connections to one database plus the helpers every store method uses."""

    dialect: str

    def __init__(self, target: Target) -> None:
        self.target = target
        self.dialect = target.dialect
        self.known_days: set[tuple[str, str]] = set()
        """(user_id, day) pairs whose conversation is known to exist."""
        self.rows = q.RowCache()
        """Messages and notes already built from fetched rows (see `RowCache`)."""

    @staticmethod
    def open(target: Target, *, pool_size: int = 8) -> Backend:
        if target.dialect == "sqlite":
            return SqliteBackend(
                target, create_sqlite_engine(target, pool_size=pool_size)
            )
        return PostgresBackend(
            target, create_postgres_engine(target, pool_size=pool_size)
        )

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


class _Pg:
    """An async SQLAlchemy connection plus the raw asyncpg path (`run`)."""

    __slots__ = ("conn",)

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    @property
    def dialect(self) -> Dialect:
        return self.conn.dialect

    async def execute(self, statement: Any, parameters: Any = None) -> Result[Any]:
        result: Result[Any] = await self.conn.execute(statement, parameters)
        return result

    async def run_sync(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self.conn.run_sync(fn, *args)

    async def _driver(self) -> Any:
        return (await self.conn.get_raw_connection()).driver_connection

    async def run(self, statement: Any, params: dict[str, Any]) -> Raw:
        sql, args = _arguments(statement, "postgresql", params)
        raw = await self._driver()
        if _returns_rows(sql):
            rows = await raw.fetch(sql, *args)
            return Raw(rows, len(rows))
        status = await raw.execute(sql, *args)
        return Raw([], int(status.rsplit(" ", 1)[-1]))

    async def run_many(self, statement: Any, rows: list[dict[str, Any]]) -> None:
        sql = compiled(statement, "postgresql")[0]
        args = [_arguments(statement, "postgresql", row)[1] for row in rows]
        await (await self._driver()).executemany(sql, args)


class PostgresBackend(Backend):
    """SQLAlchemy's async engine on asyncpg. SQLAlchemy runs in autocommit mode
    (reads need no BEGIN/ROLLBACK round trips); transactions are asyncpg's."""

    def __init__(self, target: Target, engine: AsyncEngine) -> None:
        super().__init__(target)
        self.engine = engine
        self._reader = engine.execution_options(isolation_level="AUTOCOMMIT")

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[Conn]:
        async with self.translated(), self._reader.connect() as conn:
            yield _Pg(conn)

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Conn]:
        async with self.translated(), self._reader.connect() as conn:
            pg = _Pg(conn)
            driver = await pg._driver()
            async with driver.transaction(isolation="repeatable_read", readonly=True):
                yield pg

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[Conn]:
        """The transaction is asyncpg's own, on a connection SQLAlchemy sees in
        autocommit mode: statements run through SQLAlchemy and raw (`run`) alike
        are inside it, whichever comes first."""
        try:
            async with self.translated(), self._reader.connect() as conn:
                pg = _Pg(conn)
                driver = await pg._driver()
                async with driver.transaction():
                    yield pg
        except Discard:
            pass

    async def fetch(self, statement: Any, params: dict[str, Any]) -> list[Any]:
        sql, args = _arguments(statement, "postgresql", params)
        async with self.translated(), self._reader.connect() as conn:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            return list(await driver.fetch(sql, *args))

    async def dispose(self) -> None:
        await self.engine.dispose()


class _Inline:
    """A synchronous SQLAlchemy connection behind the async `Conn` interface."""

    __slots__ = ("sync",)

    def __init__(self, sync: Connection) -> None:
        self.sync = sync

    @property
    def dialect(self) -> Dialect:
        return self.sync.dialect

    async def execute(self, statement: Any, parameters: Any = None) -> Result[Any]:
        return self.sync.execute(statement, parameters)

    async def run_sync(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(self.sync, *args)

    async def run(self, statement: Any, params: dict[str, Any]) -> Raw:
        sql, args = _arguments(statement, "sqlite", params)
        cursor = _raw(self.sync).execute(sql, args)
        rows = cursor.fetchall() if cursor.description else []
        return Raw(rows, cursor.rowcount if cursor.rowcount >= 0 else len(rows))

    async def run_many(self, statement: Any, rows: list[dict[str, Any]]) -> None:
        sql = compiled(statement, "sqlite")[0]
        _raw(self.sync).executemany(
            sql, [_arguments(statement, "sqlite", row)[1] for row in rows]
        )


def _checkpoint(path: Path) -> None:
    """Copy the WAL into the database (PASSIVE: never waits for readers or writers)."""
    try:
        conn = sqlite3.connect(path, timeout=1.0)
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()
    except sqlite3.Error as exc:  # the next one will try again
        log.warning("WAL checkpoint of %s failed: %s", path, exc)


def _raw(sync: Connection) -> sqlite3.Connection:
    return sync.connection.dbapi_connection  # type: ignore[return-value]


class SqliteBackend(Backend):
    """The sqlite3 driver run inline; writers queue for the lock with asyncio.sleep.

    Statements inside a transaction never suspend, so one connection serves the
    whole process: no two of its transactions can interleave on the event
    loop, and no pool checkout is paid per call.
    """

    def __init__(self, target: Target, engine: Engine) -> None:
        super().__init__(target)
        self.engine = engine
        self._sync: Connection | None = None
        self._commits = 0
        self._checkpoint: asyncio.Task[None] | None = None

    def _committed(self) -> None:
        """Every `CHECKPOINT_EVERY` commits, checkpoint the WAL in a thread.

        A checkpoint copies the WAL into the database file and fsyncs it, which
        can take milliseconds on a busy disk; done inline it would stall the
        event loop (a worker's lease keeper, a gateway's sockets).
        """
        self._commits += 1
        if self._commits % CHECKPOINT_EVERY or (
            self._checkpoint is not None and not self._checkpoint.done()
        ):
            return
        assert self.target.path is not None
        self._checkpoint = asyncio.ensure_future(
            asyncio.to_thread(_checkpoint, self.target.path)
        )

    def _connection(self) -> Connection:
        if self._sync is None or self._sync.closed or self._sync.invalidated:
            if self._sync is not None:
                self._sync.close()
            self._sync = self.engine.connect()
        return self._sync

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[Conn]:
        async with self.translated():
            yield _Inline(self._connection())

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Conn]:
        async with self.translated():
            sync = self._connection()
            sync.rollback()  # end SQLAlchemy's implicit (driver-less) transaction
            sync.exec_driver_sql("BEGIN")
            try:
                yield _Inline(sync)
            finally:
                sync.rollback()

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[Conn]:
        try:
            async with self.translated():
                sync = await self._begin_immediate()
                raw = _raw(sync)
                try:
                    yield _Inline(sync)
                except BaseException:
                    sync.rollback()  # SQLAlchemy's bookkeeping, then the driver's
                    raw.rollback()
                    raise
                sync.commit()
                raw.commit()  # statements run raw leave SQLAlchemy unaware
            self._committed()
        except Discard:
            pass

    async def _begin_immediate(self) -> Connection:
        """Take the write lock, sleeping (not blocking the loop) while it is busy."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LOCK_WAIT_S
        delay = 0.0005
        while True:
            sync = self._connection()
            sync.rollback()
            raw = _raw(sync)
            raw.execute("PRAGMA busy_timeout = 0")
            try:
                raw.execute("BEGIN IMMEDIATE")
                return sync
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or loop.time() > deadline:
                    raise
            finally:
                raw.execute(f"PRAGMA busy_timeout = {READ_BUSY_TIMEOUT_MS}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.02)

    async def fetch(self, statement: Any, params: dict[str, Any]) -> list[Any]:
        sql, args = _arguments(statement, "sqlite", params)
        async with self.translated():
            rows: list[Any] = _raw(self._connection()).execute(sql, args).fetchall()
            return rows

    async def dispose(self) -> None:
        if self._checkpoint is not None:
            await asyncio.gather(self._checkpoint, return_exceptions=True)
        if self._sync is not None:
            self._sync.close()
            self._sync = None
        self.engine.dispose()
