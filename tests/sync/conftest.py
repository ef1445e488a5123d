"""Sync test fixtures: a real server stack (gateway, worker, Redis, SQLite store,
the fake provider) and device homes that run the real `grizz` CLI in-process.

Each `Home` is one device: its own GRIZZ_HOME (config, keys file, SQLite
database). `home.grizz(...)` runs a command with that home in a worker thread,
so the server keeps serving on the test's event loop meanwhile.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from grizz_server.gateway.server import RunningGateway
from grizz_tui.cli import app
from grizz_tui.store.db import Database, open_database
from tests.server.conftest import (
    Stack,
    fast_settings,
    redis_proc,
    redis_url,
    server_settings,
    sqlite_url,
    stack,
)

__all__ = [
    "fast_settings",
    "redis_proc",
    "redis_url",
    "server_settings",
    "sqlite_url",
    "stack",
]


@dataclass
class Home:
    """One device: a GRIZZ_HOME and the `grizz` CLI run against it."""

    path: Path
    env: dict[str, str | None] = dataclasses.field(default_factory=dict)

    async def grizz(
        self, *args: str, input: str | None = None, **env: str | None
    ) -> Result:
        """Run `grizz ARGS` for this device in a thread."""
        runner = CliRunner()
        merged = {"GRIZZ_HOME": str(self.path), **self.env, **env}
        # CliRunner swaps process-wide stdio and environ: tests await one
        # command at a time.
        return await asyncio.to_thread(
            runner.invoke, app, list(args), input=input, env=merged
        )

    async def login(self, url: str, token: str) -> Result:
        result = await self.grizz("login", url, input=token + "\n")
        assert result.exit_code == 0, result.stderr
        return result

    def db(self) -> Database:
        return open_database(self.path / "grizz.db")

    def rows(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        db = self.db()
        try:
            return list(db.query(sql, params or []))
        finally:
            db.close()


@pytest.fixture
def homes(tmp_path: Path) -> Callable[[str], Home]:
    """`homes("laptop")`: a fresh device home."""

    def make(name: str) -> Home:
        path = tmp_path / f"device-{name}"
        path.mkdir()
        return Home(path)

    return make


async def stop_gateway(stack: Stack) -> int:
    """Take the gateway down (the worker keeps running); returns its port."""
    port = stack.gateway.port
    await stack.gateway.__aexit__(None, None, None)
    return port


async def start_gateway(stack: Stack, port: int) -> None:
    """Bring a gateway up again on the same port."""
    settings = dataclasses.replace(stack.settings, port=port)
    stack.gateway = await RunningGateway(settings).__aenter__()


def env_without_provider() -> dict[str, str | None]:
    """CLI env in which no provider is usable (no key, nothing local)."""
    return {"OPENAI_API_KEY": None, "GRIZZ_API_KEY": None, "OPENAI_BASE_URL": None}
