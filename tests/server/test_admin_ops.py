"""Operator commands: `users delete|rename`, `tokens list` across users,
`dlq list` with names and `dlq purge` (issue 14), on real stores and Redis."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys

from typer.testing import CliRunner, Result

from grizz_core import protocol as p
from grizz_core.domain import Attachment, Role
from grizz_server import keys
from grizz_server.cli import app
from grizz_server.store import ServerStore
from tests.fakes.openai_server import FakeOpenAI, HttpError
from tests.server.conftest import Stack
from tests.server.harness import Device

DAY = "2026-12-04"


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(app, list(args), input=input)


async def _fill(url: str) -> dict[str, str]:
    """alice and bob, each with a day, two messages (one with an attachment),
    a memory item and two tokens; their ids by name."""
    store = await ServerStore.open(url)
    try:
        ids = {}
        for name in ("alice", "bob"):
            ids[name] = (await store.add_user(name)).id
            user = store.for_user(ids[name])
            conv = await user.ensure_day(DAY, "UTC")
            data = f"{name}-picture".encode()
            pic = Attachment(
                id=f"att-{name}",
                message_id="",
                name="p.png",
                mime="image/png",
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                content=data,
            )
            await user.add_message(
                conversation_id=conv, role=Role.USER, content="hi", attachments=[pic]
            )
            await user.add_message(
                conversation_id=conv, role=Role.ASSISTANT, content="hello"
            )
            await user.remember(f"{name} likes tea")
            for device in ("laptop", "phone"):
                await store.add_token(name, device)
        return ids
    finally:
        await store.close()


async def _rows(url: str, user_id: str) -> dict[str, int]:
    from sqlalchemy import func, select

    from grizz_server.store.schema import metadata

    store = await ServerStore.open(url)
    try:
        counts = {}
        async with store._backend.read() as conn:
            for table in metadata.sorted_tables:
                if "user_id" in table.c:
                    counts[table.name] = (
                        await conn.execute(
                            select(func.count())
                            .select_from(table)
                            .where(table.c.user_id == user_id)
                        )
                    ).scalar_one()
        return counts
    finally:
        await store.close()


def test_users_delete_removes_all_their_data_and_nothing_else(store_url: str) -> None:
    ids = asyncio.run(_fill(store_url))
    before = asyncio.run(_rows(store_url, ids["bob"]))
    assert all(before.values()), before

    refused = run("users", "delete", "alice", "--db-url", store_url, input="n\n")
    assert refused.exit_code == 1 and "Nothing deleted" in refused.stderr
    assert "1 conversations, 2 messages, 1 memory items, 2 device tokens" in (
        refused.stderr
    )
    assert all(asyncio.run(_rows(store_url, ids["alice"])).values())

    done = run("users", "delete", "alice", "--yes", "--db-url", store_url)
    assert done.exit_code == 0, done.stderr
    assert "Deleted user alice" in done.stdout
    assert not any(asyncio.run(_rows(store_url, ids["alice"])).values())
    assert asyncio.run(_rows(store_url, ids["bob"])) == before
    listed = run("users", "list", "--db-url", store_url)
    assert listed.stdout.split()[0] == "bob" and "alice" not in listed.stdout

    again = run("users", "delete", "alice", "--yes", "--db-url", store_url)
    assert again.exit_code == 2 and "no user named 'alice'" in again.stderr
    assert "Traceback" not in again.stderr


def test_users_rename_keeps_data_and_tokens(store_url: str) -> None:
    ids = asyncio.run(_fill(store_url))
    renamed = run("users", "rename", "alice", "carol", "--db-url", store_url)
    assert renamed.exit_code == 0, renamed.stderr
    assert f"Renamed user alice to carol (id {ids['alice']})" in renamed.stdout
    tokens = json.loads(
        run("tokens", "list", "carol", "--json", "--db-url", store_url).stdout
    )
    assert {t["user"] for t in tokens} == {"carol"} and len(tokens) == 2
    assert all(asyncio.run(_rows(store_url, ids["alice"])).values())
    for args, text in [
        (("carol", "bob"), "A user named 'bob' already exists."),
        (("carol", "no good"), "not a valid user name"),
        (("ghost", "x"), "no user named 'ghost'"),
    ]:
        result = run("users", "rename", *args, "--db-url", store_url)
        assert result.exit_code == 2 and text in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1


def test_tokens_list_across_users(store_url: str) -> None:
    empty = run("tokens", "list", "--db-url", store_url)
    assert empty.exit_code == 0 and "No user has" in empty.stderr
    asyncio.run(_fill(store_url))
    listed = run("tokens", "list", "--db-url", store_url)
    assert listed.exit_code == 0, listed.stderr
    owners = sorted(
        (line.split()[1], line.split()[2]) for line in listed.stdout.splitlines()
    )
    assert owners == [
        ("alice", "laptop"),
        ("alice", "phone"),
        ("bob", "laptop"),
        ("bob", "phone"),
    ]
    as_json = json.loads(run("tokens", "list", "--json", "--db-url", store_url).stdout)
    assert sorted(t["user"] for t in as_json) == ["alice", "alice", "bob", "bob"]


def _cli(*args: str, redis_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_URL": redis_url}
    return subprocess.run(
        [sys.executable, "-m", "grizz_server", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


async def test_deleting_a_user_closes_their_connections(stack: Stack) -> None:
    alice = await Device(stack.url, stack.tokens["alice"]).connect()
    await alice.wait_for(lambda: alice.frame(p.Welcome))
    bob = await Device(stack.url, stack.tokens["bob"]).connect()
    await bob.wait_for(lambda: bob.frame(p.Welcome))
    done = await asyncio.to_thread(
        _cli,
        "users",
        "delete",
        "alice",
        "--yes",
        "--db-url",
        stack.settings.db_url,
        redis_url=stack.settings.redis_url,
    )
    assert done.returncode == 0, done.stderr
    assert "open connections are closed now" in done.stdout
    ws = alice.ws
    assert ws is not None
    await alice.wait_for(lambda: ws.close_code is not None, timeout=10)
    assert ws.close_code == 4401
    assert await stack.store.authenticate(stack.tokens["alice"]) is None
    assert isinstance(await bob.request(p.Ping(ref="x"), p.Pong), p.Pong)
    await bob.close()


async def test_dlq_list_names_users_and_purge(
    stack: Stack, provider_env: FakeOpenAI
) -> None:
    provider_env.enqueue(HttpError(500, "boom", times=1000))
    device = await stack.device("alice")
    jobs = []
    for text in ("one", "two"):
        accepted = await device.say(text)
        await device.finished(accepted.job_id)
        jobs.append(accepted.job_id)
    url = stack.settings.redis_url
    db = ("--db-url", stack.settings.db_url)
    listed = await asyncio.to_thread(_cli, "dlq", "list", *db, redis_url=url)
    assert listed.returncode == 0, listed.stderr
    assert all(f"{job}  alice  attempts 3" in listed.stdout for job in jobs)
    as_json = await asyncio.to_thread(_cli, "dlq", "list", "--json", *db, redis_url=url)
    assert {d["user_name"] for d in json.loads(as_json.stdout)} == {"alice"}

    one = await asyncio.to_thread(_cli, "dlq", "purge", jobs[0], redis_url=url)
    assert one.returncode == 0 and "Purged 1 dead letter." in one.stdout
    redis = stack.gateway.gateway.redis  # type: ignore[union-attr]
    left = [f[b"job"].decode() for _, f in await redis.xrange(keys.DLQ)]
    assert left == [jobs[1]]
    assert not await redis.exists(keys.job_info(jobs[0]))
    retry = await asyncio.to_thread(_cli, "dlq", "retry", jobs[0], redis_url=url)
    assert retry.returncode != 0 and "not in the dead-letter stream" in retry.stderr

    missing = await asyncio.to_thread(_cli, "dlq", "purge", jobs[0], redis_url=url)
    assert missing.returncode == 1 and "not in the dead-letter stream" in missing.stderr
    assert "Traceback" not in missing.stderr
    every = await asyncio.to_thread(_cli, "dlq", "purge", redis_url=url)
    assert every.returncode == 0 and "Purged 1 dead letter." in every.stdout
    assert await redis.xlen(keys.DLQ) == 0
    await device.close()
