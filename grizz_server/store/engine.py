"""Connections to the server database: URL parsing, engines, error wording.

PostgreSQL goes through SQLAlchemy's async engine on asyncpg. SQLite goes
through SQLAlchemy's engine on the standard `sqlite3` driver, run inline on
the event loop (like the local store): a server-store query takes tens of
microseconds, while aiosqlite's hop to its thread and back costs more than the
query itself (see docs/benchmarks.md). Waiting for another process's write
lock never blocks the loop: `BEGIN IMMEDIATE` is tried without a busy timeout
and retried after `asyncio.sleep` (see `backend.py`). Both back ends run the
same Core statements through the same `StoreBackend` interface.

Must not import: the core, the provider, websockets, redis.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from grizz_core import paths
from grizz_core.errors import StoreError
from grizz_core.sqlite import wal_mode
from grizz_server.settings import check_url, mask_password

READ_BUSY_TIMEOUT_MS = 200
"""How long a SQLite read may wait (inline) in the rare cases WAL readers wait."""
DB_FILE = "server.db"


def default_db_url() -> str:
    """`GRIZZ_SERVER_DB_URL`, else SQLite at `<GRIZZ_HOME or data dir>/server.db`."""
    explicit = os.environ.get("GRIZZ_SERVER_DB_URL", "").strip()
    if explicit:
        return explicit
    return f"sqlite:///{paths.data_dir() / DB_FILE}"


@dataclass(frozen=True)
class Target:
    """A parsed database URL."""

    dialect: str
    """`sqlite` or `postgresql`."""
    url: str
    """The SQLAlchemy URL, driver filled in (pysqlite or asyncpg)."""
    label: str
    """What error messages call it: a file path or `host:port/db` (no password)."""
    path: Path | None = None


def parse_url(url: str) -> Target:
    """Turn `sqlite:///path` or `postgresql://…` into an async driver URL.

    Raises:
        ConfigError: the URL's host or port is malformed.
        StoreError: the URL is not a URL or names another kind of database.
    """
    check_url(url, "The database URL")
    try:
        parsed = make_url(url.strip())
    except ArgumentError:
        raise StoreError(
            f"'{mask_password(url)}' is not a database URL; use "
            "sqlite:///path/to/server.db or postgresql://user@host/dbname."
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise StoreError(
                "The server store needs a file: use sqlite:///path/to/server.db."
            )
        path = Path(parsed.database).expanduser()
        sync_url = parsed.set(drivername="sqlite+pysqlite", database=str(path))
        return Target("sqlite", sync_url.render_as_string(False), str(path), path)
    if backend in ("postgresql", "postgres"):
        async_url = parsed.set(drivername="postgresql+asyncpg")
        host, port = parsed.host or "localhost", parsed.port or 5432
        where = f"{host}:{port}/{parsed.database or ''}"
        return Target("postgresql", async_url.render_as_string(False), where)
    raise StoreError(
        f"Unsupported database URL scheme '{parsed.drivername}'; use sqlite:///path "
        "or postgresql://user@host/dbname."
    )


def sqlite_damage(path: Path) -> str | None:
    """What SQLite's `PRAGMA quick_check` finds wrong with `path` (None: fine).

    Opens the file read-only and reads every page once without checking
    index contents against their tables (cheap next to `integrity_check`).
    """
    import sqlite3

    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            rows = conn.execute("PRAGMA quick_check(3)").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return str(exc) or type(exc).__name__
    text = " ".join(str(row[0]) for row in rows if row[0] != "ok")
    text = " ".join(text.replace("*** in database main ***", "").split())
    return f"quick_check: {text}" if text else None


def create_sqlite_engine(target: Target, *, pool_size: int = 8) -> Engine:
    """A (synchronous, inline) engine on the SQLite file, WAL mode, FKs on.

    A new database file is created 0600 (it holds everyone's messages; SQLite
    gives its -wal and -shm files the same mode). An existing one keeps its
    mode: the user may have chosen it.
    """
    if target.path is not None and target.path.parent.is_dir():
        with contextlib.suppress(OSError):  # exists, or SQLite will say why not
            os.close(os.open(target.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    engine = sqlalchemy.create_engine(
        target.url, pool_size=pool_size, max_overflow=pool_size
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Autocommit at the driver: `StoreBackend` issues BEGIN / BEGIN IMMEDIATE
        # itself, which also makes DDL transactional for migrations.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 30000")  # first connection may race
        # a gateway and its workers opening a new file together: see wal_mode
        mode = wal_mode(dbapi_connection, 30.0)
        if str(mode).lower() != "wal":  # read-only directory: still usable
            cursor.execute("PRAGMA journal_mode = DELETE")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = NORMAL")
        # Checkpoints (which fsync) run in a thread, see SqliteBackend.
        cursor.execute("PRAGMA wal_autocheckpoint = 0")
        cursor.execute(f"PRAGMA busy_timeout = {READ_BUSY_TIMEOUT_MS}")
        cursor.close()

    return engine


def create_postgres_engine(target: Target, *, pool_size: int = 8) -> AsyncEngine:
    """An async engine on asyncpg with a pool shared by all of a process's users."""
    return create_async_engine(
        target.url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=False,
        connect_args={
            "timeout": 10,
            "server_settings": {"application_name": "grizz-server"},
        },
    )


def describe(target: Target, exc: BaseException) -> str:
    """One sentence for a database failure, with no secrets in it."""
    inner = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text = " ".join(str(inner).split()) or type(inner).__name__
    text = text.split(" (Background on this error")[0]
    if target.dialect == "sqlite":
        if "not a database" in text or "malformed" in text:
            return (
                f"{target.label} is not a usable grizz-server database ({text}); "
                "it was left untouched."
            )
        if "unable to open" in text:
            return f"Cannot open the database file {target.label} ({text})."
        return f"The server database {target.label} failed: {text}."
    if isinstance(inner, OSError | TimeoutError):
        return f"Cannot reach PostgreSQL at {target.label}: {text}."
    return f"PostgreSQL at {target.label} failed: {text}."
