"""Opening the local database: the only place a connection is made.

`open_database` sets WAL mode and a busy timeout (so two `grizz` processes can
write the same file), applies pending migrations under an inter-process file
lock, and turns "not a database" / "corrupt" into one clear `StoreError`.

`Database` is a thin layer over `sqlite3` (rows as dicts, named inserts).
sqlite-utils runs the migrations (`Migrations`, `enable_fts`) but is imported
only when the schema is behind: its import costs ~0.2 s, a quarter of the
`grizz ask` budget (docs/benchmarks.md).

Must not import: textual, httpx, rich, the core.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from grizz_core import paths
from grizz_core.errors import StoreError
from grizz_core.sqlite import wal_mode
from grizz_tui.store.schema import MIGRATION_NAMES, MIGRATION_SET

BUSY_TIMEOUT_MS = 10_000


class Database:
    """A SQLite connection with dict rows; write through `writing(db)`."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    def query(self, sql: str, params: Sequence[Any] = ()) -> Iterator[dict[str, Any]]:
        cursor = self.conn.execute(sql, params)
        names = [d[0] for d in cursor.description or ()]
        for row in cursor:
            yield dict(zip(names, row, strict=True))

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def insert(
        self, table: str, row: dict[str, Any], *, ignore: bool = False, upsert: str = ""
    ) -> None:
        """INSERT `row`; `ignore` skips duplicates, `upsert=pk` updates on conflict."""
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        verb = "INSERT OR IGNORE" if ignore else "INSERT"
        sql = f"{verb} INTO {table} ({cols}) VALUES ({marks})"
        if upsert:
            sets = ", ".join(f"{c} = excluded.{c}" for c in row if c != upsert)
            sql += f" ON CONFLICT({upsert}) DO UPDATE SET {sets}"
        self.conn.execute(sql, list(row.values()))

    def close(self) -> None:
        self.conn.close()


def open_database(
    path: Path | None = None,
    *,
    migrate: bool = True,
    check: bool | Literal["daily"] = False,
) -> Database:
    """Open (creating if needed) the Grizz database at `path`.

    With `check`, damaged pages behind a valid header are found before
    anything is written (`PRAGMA quick_check`, ~0.4 s for 265 MB): otherwise
    they surface at the first read that touches them. `check="daily"` (the
    commands) runs it when none passed in the last `CHECK_EVERY_S` or the
    file was replaced; `True` (the app, after its first frame) every time.

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
            path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys = ON")
        db = Database(conn, path)
        if check and not in_memory and (check is True or _check_due(path)):
            _check_pages(db)  # before anything (the journal mode) is written
            _checked(path)
        mode = wal_mode(conn, BUSY_TIMEOUT_MS / 1000)
        if mode != "wal":  # e.g. a read-only directory; still usable, just slower
            conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("PRAGMA synchronous = NORMAL")
        if migrate and _behind(db):
            with contextlib.nullcontext() if in_memory else _migration_lock(path):
                _apply_migrations(db)
    except sqlite3.DatabaseError as exc:
        raise store_error(path, exc) from None
    except OSError as exc:
        raise StoreError(
            f"Could not open the database {path}: {exc.strerror}."
        ) from None
    return db


CHECK_EVERY_S = 24 * 3600
"""How often commands re-read the whole file for damaged pages. A full check
costs ~0.4 s on five years of history (265 MB), too much for every `grizz
ask`; damage is rare and, between checks, still surfaces as one line at the
first read that touches it."""


def _check_marker(path: Path) -> Path:
    return path.with_name(path.name + ".checked")


def _check_due(path: Path) -> bool:
    """A full page check is due: none passed within `CHECK_EVERY_S`, or the
    file was replaced since (a restore, a copy from elsewhere: a new inode)."""
    marker = _check_marker(path)
    try:
        fresh = time.time() - marker.stat().st_mtime < CHECK_EVERY_S
        same_file = marker.read_text().strip() == str(path.stat().st_ino)
    except OSError:
        return True
    return not (fresh and same_file)


def _checked(path: Path) -> None:
    """Remember that `path` passed a full page check now."""
    with contextlib.suppress(OSError):
        _check_marker(path).write_text(str(path.stat().st_ino))


def _check_pages(db: Database) -> None:
    """Raise `sqlite3.DatabaseError` when `quick_check` finds a damaged page."""
    problems = [row[0] for row in db.execute("PRAGMA quick_check(1)")]
    if problems != ["ok"]:
        page = re.search(r"[Pp]age (\d+)", problems[0])
        where = f"page {page[1]} is damaged" if page else " ".join(problems[0].split())
        raise sqlite3.DatabaseError(f"database disk image is malformed: {where}")


def _behind(db: Database) -> bool:
    """True when some migration has not been applied (cheap: no sqlite-utils)."""
    try:
        applied = {
            row["name"]
            for row in db.query(
                "SELECT name FROM _sqlite_migrations WHERE migration_set = ?",
                [MIGRATION_SET],
            )
        }
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return True
        raise
    return not set(MIGRATION_NAMES) <= applied


def _apply_migrations(db: Database) -> None:
    import sqlite_utils

    from grizz_tui.store.migrations import migrations

    migrations.apply(sqlite_utils.Database(db.conn))


@contextlib.contextmanager
def writing(db: Database) -> Iterator[Database]:
    """A write transaction that takes the write lock up front (BEGIN IMMEDIATE).

    A deferred transaction that reads before it writes can fail at once with
    SQLITE_BUSY when another process commits in between (the busy timeout does
    not apply to that upgrade). Taking the lock first makes concurrent writers
    queue politely. Nested use becomes a savepoint.
    """
    conn = db.conn
    if conn.in_transaction:
        name = f"grizz_{secrets.token_hex(8)}"
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield db
        except BaseException:
            if conn.in_transaction:
                conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
                conn.execute(f"RELEASE SAVEPOINT {name}")
            raise
        conn.execute(f"RELEASE SAVEPOINT {name}")
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def store_error(path: Path, exc: sqlite3.DatabaseError) -> StoreError:
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


@contextlib.contextmanager
def translate_errors(path: Path | str = "the database") -> Iterator[None]:
    """Re-raise `sqlite3.DatabaseError` inside the block as `StoreError`."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        raise store_error(Path(path), exc) from None
