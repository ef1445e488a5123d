"""Opening a store back end: the one place that picks SQLite or PostgreSQL.

`backend.py` holds what both back ends share (`StoreBackend`, `Conn`, the
driver-level helpers) and never imports a concrete one; `sqlite_backend.py`
and `postgres_backend.py` build on it, and `open_backend` chooses between
them from the database URL's dialect.

Must not import: the store's higher layers (`server`, `user`), the core, the
provider, websockets, redis.
"""

from __future__ import annotations

from .backend import StoreBackend
from .engine import Target, create_postgres_engine, create_sqlite_engine
from .postgres_backend import PostgresBackend
from .sqlite_backend import SqliteBackend


def open_backend(target: Target, *, pool_size: int = 8) -> StoreBackend:
    """The back end for `target`'s dialect, with a pool of `pool_size` connections.

    Args:
        target: the parsed database URL (`engine.parse_url`).
        pool_size: connections kept open (readers, on SQLite).

    Returns:
        A `SqliteBackend` for `sqlite`, else a `PostgresBackend`.
    """
    if target.dialect == "sqlite":
        return SqliteBackend(target, create_sqlite_engine(target, pool_size=pool_size))
    return PostgresBackend(target, create_postgres_engine(target, pool_size=pool_size))
