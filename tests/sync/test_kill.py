"""`grizz ask` through a server whose processes die mid-reply.

Real processes: `grizz-server` gateways and workers forked from a preloaded
fork server (tests/server/harness.py `ProcessPool`) that the tests SIGKILL.
The fake provider streams slowly, so the reply is still open when the kill
comes; that it was is checked (the server stores a reply row only when an
attempt ends), never assumed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from grizz_server import keys
from grizz_server.redis_server import free_port
from grizz_server.settings import ServerSettings
from tests.fakes.openai_server import FakeOpenAI, Text
from tests.server.conftest import Stack, start_stack, stop_stack
from tests.server.harness import ProcessPool, provider_env_vars, until
from tests.sync.conftest import Home

REPLY = "Bears fish at dawn, nap at noon, and tell long stories by the fire at night."
"""~80 characters in 3-character chunks 60 ms apart: about 1.6 s of streaming."""

pytestmark = pytest.mark.slow


@pytest.fixture
def slow_fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(default=Text(REPLY, chunk=3, delay=0.06)).start()
    for name, value in provider_env_vars(fake).items():
        monkeypatch.setenv(name, value)
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def kill_settings(server_settings: ServerSettings) -> ServerSettings:
    return dataclasses.replace(
        server_settings,
        lease_ms=300,
        visibility_ms=500,
        block_ms=50,
        heartbeat_ms=100,
        max_attempts=6,
        max_deliveries=10,
    )


@pytest.fixture
def pool(kill_settings: ServerSettings, slow_fake: FakeOpenAI) -> Iterator[ProcessPool]:
    processes = ProcessPool(kill_settings, provider_env_vars(slow_fake))
    try:
        yield processes
    finally:
        processes.stop_all()


@pytest.fixture
async def users(kill_settings: ServerSettings) -> AsyncIterator[Stack]:
    """The store with its users (and an in-process gateway), no worker."""
    running = await start_stack(kill_settings, workers=0)
    try:
        yield running
    finally:
        await stop_stack(running)


def _streaming(home: Home) -> Callable[[], dict[str, Any] | None]:
    """The device's reply row once some of its text is stored, else None."""

    def check() -> dict[str, Any] | None:
        rows = home.rows(
            "SELECT id, content, metadata FROM messages WHERE role = 'assistant'"
            " AND status = 'streaming'"
        )
        return rows[0] if rows and rows[0]["content"] else None

    return check


async def _no_reply_stored_yet(stack: Stack) -> None:
    """The kill came mid-reply: the server has stored no reply row yet."""
    changes, _, _ = await stack.store.for_user(stack.user_ids["alice"]).pull(0, 100)
    assert [c for c in changes if c["data"].get("role") == "assistant"] == []


async def _login(home: Home, url: str, token: str) -> None:
    async def done() -> bool:
        result = await home.grizz("login", url, input=token + "\n")
        return result.exit_code == 0

    await until(done, what="a login once the gateway listens")


async def _assert_one_complete_reply(home: Home, stack: Stack) -> None:
    stored = home.rows("SELECT content, status FROM messages WHERE role = 'assistant'")
    assert stored == [{"content": REPLY, "status": "complete"}]
    changes, _, _ = await stack.store.for_user(stack.user_ids["alice"]).pull(0, 100)
    replies = [c["data"] for c in changes if c["data"].get("role") == "assistant"]
    assert [(r["content"], r["status"]) for r in replies] == [(REPLY, "complete")]


async def test_ask_survives_a_killed_gateway_without_losing_or_repeating_a_chunk(
    users: Stack,
    pool: ProcessPool,
    slow_fake: FakeOpenAI,
    homes: Callable[[str], Home],
) -> None:
    port = free_port()
    pool.start()
    gateway = pool.start("gateway", GRIZZ_SERVER_PORT=str(port))
    laptop = homes("laptop")
    await _login(laptop, f"ws://127.0.0.1:{port}", users.tokens["alice"])

    asking = asyncio.create_task(laptop.grizz("ask", "tell me about bears"))
    await until(_streaming(laptop), what="the reply streaming on the laptop")
    pool.kill(gateway)
    await _no_reply_stored_yet(users)
    pool.start("gateway", GRIZZ_SERVER_PORT=str(port))

    result = await asking
    assert result.exit_code == 0, result.stderr
    assert result.stdout == REPLY + "\n"  # every chunk once, in order
    await _assert_one_complete_reply(laptop, users)
    assert len(slow_fake.requests) == 1  # the worker never noticed


async def test_ask_handles_a_killed_worker_the_last_attempt_is_the_reply(
    users: Stack,
    pool: ProcessPool,
    slow_fake: FakeOpenAI,
    homes: Callable[[str], Home],
) -> None:
    redis = users.gateway.gateway.redis  # type: ignore[union-attr]
    for _ in range(2):  # the other one takes the job over at once
        pool.start()
    laptop = homes("laptop")
    await _login(laptop, users.url, users.tokens["alice"])

    asking = asyncio.create_task(laptop.grizz("ask", "tell me about bears"))
    row = await until(_streaming(laptop), what="the reply streaming on the laptop")
    job = json.loads(row["metadata"])["job_id"]
    owner = await until(
        lambda: redis.hget(keys.job_info(job), "owner"), what="the job's worker"
    )
    pool.kill(int(owner.decode().split(":")[1]))
    await _no_reply_stored_yet(users)

    result = await asking
    assert result.exit_code == 0, result.stderr
    first, _, last = result.stdout.removesuffix("\n").rpartition("\n")
    assert last == REPLY  # the last attempt, whole, after the cut-off one
    assert first and REPLY.startswith(first)
    assert "the reply started over" in result.stderr
    await _assert_one_complete_reply(laptop, users)
    assert len(slow_fake.requests) >= 2
