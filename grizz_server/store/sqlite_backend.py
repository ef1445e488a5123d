"""The SQLite back end: the sqlite3 driver run inline on the event loop.

Why inline, and how writers wait for another process's lock without blocking
the loop: see `engine.py` and `SqliteBackend`.

Must not import: the core, the provider, websockets, redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection, Dialect, Engine, Result

from .backend import Backend, Conn, Discard, Raw, bind_arguments, compiled
from .engine import READ_BUSY_TIMEOUT_MS, Target

log = logging.getLogger(__name__)

CHECKPOINT_EVERY = 500
"""Commits (per process) between WAL checkpoints."""
LOCK_WAIT_S = 30.0
"""How long a writer waits for another process's write lock."""


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
        sql, args = bind_arguments(statement, "sqlite", params)
        cursor = _raw(self.sync).execute(sql, args)
        rows = cursor.fetchall() if cursor.description else []
        return Raw(rows, cursor.rowcount if cursor.rowcount >= 0 else len(rows))

    async def run_many(self, statement: Any, rows: list[dict[str, Any]]) -> None:
        sql = compiled(statement, "sqlite")[0]
        _raw(self.sync).executemany(
            sql, [bind_arguments(statement, "sqlite", row)[1] for row in rows]
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
        sql, args = bind_arguments(statement, "sqlite", params)
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
