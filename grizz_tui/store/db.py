"""Opening the local database: the only place a connection is made.

`open_database` sets WAL mode and a busy timeout (so two `grizz` processes can
write the same file), applies pending migrations under an inter-process file
lock, and turns "not a database" / "corrupt" into one clear `StoreError`.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from sqlite_utils import Database

from grizz_tui import paths
from grizz_tui.errors import StoreError
from grizz_tui.store.migrations import migrations

BUSY_TIMEOUT_MS = 10_000


def open_database(path: Path | None = None, *, migrate: bool = True) -> Database:
    """Open (creating if needed) the Grizz database at `path`.

    Raises:
        StoreError: the file is not a SQLite database, is damaged, or cannot be
            opened. The file is never modified or replaced in that case.
    """
    path = path or paths.db_path()
    in_memory = str(path) == ":memory:"
    if not in_memory:
        paths.ensure_private_dir(path.parent)
    try:
        # Autocommit mode: we open write transactions ourselves with
        # BEGIN IMMEDIATE (see `writing`), so another process's lock makes us
        # wait on the busy timeout instead of failing with "database is locked".
        conn = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None
        )
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys = ON")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":  # e.g. a read-only directory; still usable, just slower
            conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("PRAGMA synchronous = NORMAL")
        db = Database(conn)
        if migrate and in_memory:
            migrations.apply(db)
        elif migrate:
            with _migration_lock(path):
                migrations.apply(db)
    except sqlite3.DatabaseError as exc:
        raise _store_error(path, exc) from None
    except OSError as exc:
        raise StoreError(
            f"Could not open the database {path}: {exc.strerror}."
        ) from None
    return db


@contextlib.contextmanager
def writing(db: Database) -> Iterator[Database]:
    """A write transaction that takes the write lock up front (BEGIN IMMEDIATE).

    A deferred transaction that reads before it writes can fail at once with
    SQLITE_BUSY when another process commits in between (the busy timeout does
    not apply to that upgrade). Taking the lock first makes concurrent writers
    queue politely. Nested use becomes a savepoint.
    """
    if db.conn.in_transaction:
        with db.atomic():
            yield db
        return
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if db.conn.in_transaction:
            db.conn.execute("ROLLBACK")
        raise
    db.conn.execute("COMMIT")


def _store_error(path: Path, exc: sqlite3.DatabaseError) -> StoreError:
    text = str(exc)
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return StoreError(
            f"{path} is not a usable Grizz database ({text}). It was left untouched; "
            "move it aside (or set GRIZZ_DB) to start a fresh one."
        )
    if "locked" in text or "busy" in text:
        return StoreError(f"The database {path} is locked by another program ({text}).")
    return StoreError(f"The database {path} failed: {text}.")


@contextlib.contextmanager
def _migration_lock(path: Path) -> Iterator[None]:
    """Serialise migrations between processes opening the same fresh database."""
    try:
        import fcntl
    except ImportError:  # Windows: SQLite's own locking has to do
        yield
        return
    lock_path = path.with_name(path.name + ".lock")
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def translate_errors(path: Path | str = "the database"):  # type: ignore[no-untyped-def]
    """Context manager: re-raise `sqlite3.DatabaseError` as `StoreError`."""
    return _Translate(Path(path))


class _Translate(contextlib.AbstractContextManager["_Translate"]):
    def __init__(self, path: Path) -> None:
        self.path = path

    def __exit__(self, exc_type, exc, tb) -> None:  # type: ignore[no-untyped-def]
        if exc is not None and isinstance(exc, sqlite3.DatabaseError):
            raise _store_error(self.path, exc) from None
