"""The PostgreSQL back end: asyncpg through SQLAlchemy's async engine.

SQLAlchemy runs in autocommit mode (reads need no BEGIN/ROLLBACK round trips);
transactions are asyncpg's own, so statements run through SQLAlchemy and raw
on the driver (`run`, `fetch`) share them.

Must not import: the core, the provider, websockets, redis.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from sqlalchemy.engine import Dialect, Result
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .backend import (
    Conn,
    Discard,
    Raw,
    StoreBackend,
    bind_arguments,
    compiled,
    returns_rows,
)
from .engine import Target


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
        sql, args = bind_arguments(statement, "postgresql", params)
        raw = await self._driver()
        if returns_rows(sql):
            rows = await raw.fetch(sql, *args)
            return Raw(rows, len(rows))
        status = await raw.execute(sql, *args)
        return Raw([], int(status.rsplit(" ", 1)[-1]))

    async def run_many(self, statement: Any, rows: list[dict[str, Any]]) -> None:
        sql = compiled(statement, "postgresql")[0]
        args = [bind_arguments(statement, "postgresql", row)[1] for row in rows]
        await (await self._driver()).executemany(sql, args)


class PostgresBackend(StoreBackend):
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
        sql, args = bind_arguments(statement, "postgresql", params)
        async with self.translated(), self._reader.connect() as conn:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            return list(await driver.fetch(sql, *args))

    async def dispose(self) -> None:
        await self.engine.dispose()
