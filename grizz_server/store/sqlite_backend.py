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

from .backend import Conn, Discard, Raw, StoreBackend, bind_arguments, compiled
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


class _Group:
    """One write transaction shared by the writers of one event-loop turn."""

    __slots__ = (
        "begin",
        "begun",
        "broken",
        "done",
        "open",
        "pending",
        "scheduled",
        "writes",
    )

    def __init__(self, begun: asyncio.Future[None], done: asyncio.Future[None]) -> None:
        self.begun = begun
        """BEGIN IMMEDIATE went through (or why not): every joiner waits on it."""
        self.done = done
        """The COMMIT went through (or why not)."""
        self.open = False
        """Writers may join: begun and not yet committing."""
        self.pending = 0
        """Writers that joined and have not yet released their savepoint."""
        self.scheduled = False
        self.writes = 0
        self.broken: BaseException | None = None
        """A savepoint could not be rolled back: the whole group must fail."""
        self.begin: asyncio.Task[None] | None = None


class SqliteBackend(StoreBackend):
    """The sqlite3 driver run inline, on two connections of the process.

    Reads (`read`, `snapshot`, `fetch`) use one connection in autocommit mode,
    so they only ever see committed data. Writes use the other, in *group
    commits*: every writer that arrives while a write transaction is open
    joins it inside its own SAVEPOINT (a writer's error or `Discard` rolls
    back only its own statements, and gives back its change numbers), and
    the transaction commits at the start of the next event-loop turn, once
    all its writers have run. A writer returns only after that COMMIT, so a
    write is durable before its caller moves on (DESIGN, guarantee 1); a
    failed COMMIT fails every writer of the group and stores none of them.
    Under load a gateway stores the messages of a whole burst, and a worker
    the replies that ended together, in one transaction: one lock round and
    one WAL append instead of one per message.

    Statements inside a transaction never suspend, so no two writers'
    statements interleave; only waiting for another process's lock sleeps
    (with asyncio.sleep, never blocking the loop). Write bodies must not
    nest `write()` (the inner one would wait for its own group's commit).
    """

    def __init__(self, target: Target, engine: Engine) -> None:
        super().__init__(target)
        self.engine = engine
        self._reader: Connection | None = None
        self._writer: Connection | None = None
        self._group: _Group | None = None
        self._commits = 0
        self.transactions = 0
        """Write transactions committed by this process (tests, diagnostics)."""
        self._checkpoint: asyncio.Task[None] | None = None

    def _committed(self, writes: int) -> None:
        """Every `CHECKPOINT_EVERY` writes, checkpoint the WAL in a thread.

        A checkpoint copies the WAL into the database file and fsyncs it, which
        can take milliseconds on a busy disk; done inline it would stall the
        event loop (a worker's lease keeper, a gateway's sockets).
        """
        before = self._commits
        self._commits += writes
        if self._commits // CHECKPOINT_EVERY == before // CHECKPOINT_EVERY or (
            self._checkpoint is not None and not self._checkpoint.done()
        ):
            return
        assert self.target.path is not None
        self._checkpoint = asyncio.ensure_future(
            asyncio.to_thread(_checkpoint, self.target.path)
        )

    def _fresh(self, conn: Connection | None, busy_timeout_ms: int) -> Connection:
        if conn is None or conn.closed or conn.invalidated:
            if conn is not None:
                conn.close()
            conn = self.engine.connect()
            _raw(conn).execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
        return conn

    def _read_conn(self) -> Connection:
        self._reader = self._fresh(self._reader, READ_BUSY_TIMEOUT_MS)
        return self._reader

    def _write_conn(self) -> Connection:
        # no busy timeout: its statements run under the write lock, and taking
        # the lock is tried without waiting and retried with asyncio.sleep
        self._writer = self._fresh(self._writer, 0)
        return self._writer

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[Conn]:
        async with self.translated():
            yield _Inline(self._read_conn())

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Conn]:
        async with self.translated():
            sync = self._read_conn()
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
                group = await self._join()
                raw = _raw(self._write_conn())
                try:
                    raw.execute("SAVEPOINT grizz_write")
                    try:
                        yield _Inline(self._write_conn())
                    except BaseException:
                        try:
                            raw.execute("ROLLBACK TO grizz_write")
                            raw.execute("RELEASE grizz_write")
                        except sqlite3.Error as exc:
                            group.broken = exc
                        raise
                    raw.execute("RELEASE grizz_write")
                    group.writes += 1
                finally:
                    group.pending -= 1
                    self._schedule_commit(group)
                await asyncio.shield(group.done)
        except Discard:
            pass

    async def _join(self) -> _Group:
        """The open write transaction, begun now if there is none."""
        group = self._group
        if group is not None and group.open:
            group.pending += 1
            return group
        if group is None:
            loop = asyncio.get_running_loop()
            group = _Group(loop.create_future(), loop.create_future())
            group.done.add_done_callback(_retrieved)
            group.begun.add_done_callback(_retrieved)
            self._group = group
            try:
                free = self._try_begin()
            except BaseException as exc:
                self._failed(group, exc)
                raise
            if free:
                # the lock was free: this turn's writers run now, and the
                # lock is given back at the start of the next turn
                self._opened(group)
                group.pending += 1
                return group
            # its own task: a cancelled writer must not cancel the others' BEGIN
            group.begin = asyncio.ensure_future(self._begin(group))
        # the group waits for another process's lock (a committed or failed
        # group is no longer `self._group`): join it once it has begun
        group.pending += 1
        try:
            await asyncio.shield(group.begun)
        except BaseException:
            group.pending -= 1
            if group.open:
                self._schedule_commit(group)
            raise
        return group

    async def _begin(self, group: _Group) -> None:
        try:
            await self._begin_immediate()
        except BaseException as exc:
            self._failed(group, exc)
            return
        self._opened(group)

    def _failed(self, group: _Group, exc: BaseException) -> None:
        """BEGIN failed: every writer waiting to join gets the error."""
        if self._group is group:
            self._group = None
        group.begun.set_exception(exc)
        group.done.set_exception(exc)

    def _opened(self, group: _Group) -> None:
        group.open = True
        group.begun.set_result(None)
        self._schedule_commit(group)  # commits even if every joiner went away

    def _schedule_commit(self, group: _Group) -> None:
        if not group.scheduled and group.open:
            group.scheduled = True
            asyncio.get_running_loop().call_soon(self._commit, group)

    def _commit(self, group: _Group) -> None:
        """COMMIT the group once every writer in it has run (a loop callback)."""
        group.scheduled = False
        if group.pending or not group.open:
            return  # the last writer to finish schedules it again
        group.open = False
        if self._group is group:
            self._group = None
        sync = self._write_conn()
        raw = _raw(sync)
        try:
            if group.broken is not None:
                raise group.broken
            sync.commit()
            raw.commit()  # statements run raw leave SQLAlchemy unaware
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                sync.rollback()
                raw.rollback()  # a COMMIT refused by a deferred check stays open
            group.done.set_exception(exc)
            return
        self.transactions += 1
        group.done.set_result(None)
        if group.writes:
            self._committed(group.writes)

    def _try_begin(self) -> bool:
        """BEGIN IMMEDIATE if the write lock is free now; False if another
        process holds it."""
        sync = self._write_conn()
        sync.rollback()
        try:
            _raw(sync).execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
            return False
        return True

    async def _begin_immediate(self) -> None:
        """Take the write lock, sleeping (not blocking the loop) while it is busy.

        Another process holds the lock for about one turn of its event loop
        (its group commit), so the lock is polled often (every 0.2-2 ms): a
        slow poll lets the other processes take it again and again first.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LOCK_WAIT_S
        delay = 0.0002
        while not self._try_begin():
            if loop.time() > deadline:
                raise sqlite3.OperationalError("database is locked")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.002)

    async def fetch(self, statement: Any, params: dict[str, Any]) -> list[Any]:
        sql, args = bind_arguments(statement, "sqlite", params)
        async with self.translated():
            rows: list[Any] = _raw(self._read_conn()).execute(sql, args).fetchall()
            return rows

    async def settle(self) -> None:
        # only an open group holds rows no read can see yet; wait for that one
        # group, not for the store to fall idle (under load a new group opens
        # every turn: waiting for "no group" took 100+ ms)
        group = self._group
        if group is not None and group.open:
            await asyncio.wait([group.done])

    async def dispose(self) -> None:
        while self._group is not None:
            await asyncio.wait([self._group.done])
        if self._checkpoint is not None:
            await asyncio.gather(self._checkpoint, return_exceptions=True)
        for conn in (self._reader, self._writer):
            if conn is not None:
                conn.close()
        self._reader = self._writer = None
        self.engine.dispose()


def _retrieved(future: asyncio.Future[None]) -> None:
    """Mark a group's outcome as seen even when every writer went away."""
    if not future.cancelled():
        future.exception()
