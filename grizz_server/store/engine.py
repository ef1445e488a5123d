"""Connections to the server database: URL parsing, engine setup, error wording.

One SQLAlchemy async engine serves both back ends (aiosqlite and asyncpg).
Three views of it share one connection pool:

- `reader`: autocommit, no BEGIN/ROLLBACK round trips (single-statement reads);
- `writer`: a transaction per logical write; on SQLite it starts with
  `BEGIN IMMEDIATE` so concurrent writers (gateway and workers are separate
  processes) queue on the busy timeout instead of failing with "database is
  locked" when a deferred read transaction tries to upgrade;
- the engine itself, for migrations.

Must not import: the core, the provider, websockets, redis.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from grizz_tui import paths
from grizz_tui.errors import StoreError

BUSY_TIMEOUT_MS = 30_000
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
    """The SQLAlchemy async URL (driver filled in)."""
    label: str
    """What error messages call it: a file path or `host:port/db` (no password)."""
    path: Path | None = None


def parse_url(url: str) -> Target:
    """Turn `sqlite:///path` or `postgresql://…` into an async driver URL.

    Raises:
        StoreError: the URL is malformed or names another kind of database.
    """
    try:
        parsed = make_url(url.strip())
    except ArgumentError:
        raise StoreError(
            f"'{url}' is not a database URL; use sqlite:///path/to/server.db or "
            "postgresql://user@host/dbname."
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise StoreError(
                "The server store needs a file: use sqlite:///path/to/server.db."
            )
        path = Path(parsed.database).expanduser()
        async_url = parsed.set(drivername="sqlite+aiosqlite", database=str(path))
        return Target("sqlite", async_url.render_as_string(False), str(path), path)
    if backend in ("postgresql", "postgres"):
        async_url = parsed.set(drivername="postgresql+asyncpg")
        host, port = parsed.host or "localhost", parsed.port or 5432
        where = f"{host}:{port}/{parsed.database or ''}"
        return Target("postgresql", async_url.render_as_string(False), where)
    raise StoreError(
        f"Unsupported database URL scheme '{parsed.drivername}'; use sqlite:///path "
        "or postgresql://user@host/dbname."
    )


def create_engine(target: Target, *, pool_size: int = 8) -> AsyncEngine:
    """An async engine for `target` with the SQLite pragmas and BEGIN handling."""
    if target.dialect == "sqlite":
        engine = create_async_engine(
            target.url,
            connect_args={"timeout": BUSY_TIMEOUT_MS / 1000},
            pool_size=pool_size,
            max_overflow=pool_size,
        )
        _install_sqlite_hooks(engine)
        return engine
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


def _install_sqlite_hooks(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Autocommit at the driver: we issue BEGIN ourselves (below), which
        # also makes DDL transactional for migrations.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        mode = cursor.fetchone()[0]
        if str(mode).lower() != "wal":  # read-only directory: still usable
            cursor.execute("PRAGMA journal_mode = DELETE")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("grizz_mode")
        if mode == "read":
            return  # each statement is its own implicit transaction
        conn.exec_driver_sql("BEGIN IMMEDIATE" if mode == "write" else "BEGIN")


def views(engine: AsyncEngine, dialect: str) -> tuple[AsyncEngine, AsyncEngine]:
    """(reader, writer) views of `engine` sharing its pool."""
    if dialect == "sqlite":
        reader = engine.execution_options(grizz_mode="read")
    else:
        reader = engine.execution_options(isolation_level="AUTOCOMMIT")
    writer = engine.execution_options(grizz_mode="write")
    return reader, writer


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


@contextlib.asynccontextmanager
async def translated(target: Target) -> AsyncIterator[None]:
    """Turn driver and network errors into a one-sentence `StoreError`."""
    try:
        yield
    except StoreError:
        raise
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        raise StoreError(describe(target, exc)) from exc
