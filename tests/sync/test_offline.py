"""The server away: `grizz ask` answers directly or keeps the message pending;
the next `grizz sync` (or `grizz ask`) delivers it exactly once."""

from __future__ import annotations

from collections.abc import Callable

from grizz_core.domain import Role
from tests.fakes.openai_server import FakeOpenAI, Text
from tests.server.conftest import Stack
from tests.sync.conftest import Home, env_without_provider, start_gateway, stop_gateway

SAVED = "grizz: Saved; the server is unreachable: it will be sent on the next sync.\n"


async def _server_rows(stack: Stack, home: Home) -> list[tuple[str, str, str]]:
    """(role, content, status) of the server's copy of the device's day."""
    conv = home.rows("SELECT DISTINCT conversation_id FROM messages")
    server = stack.store.for_user(stack.user_ids["alice"])
    found = []
    for row in conv:
        for m in await server.recent_messages(row["conversation_id"], limit=50):
            found.append((str(m.role), m.content, str(m.status)))
    return sorted(found)


async def test_offline_ask_answers_directly_and_sync_uploads_both_once(
    stack: Stack, homes: Callable[[str], Home], provider_env: FakeOpenAI
) -> None:
    laptop = homes("laptop")
    await laptop.login(stack.url, stack.tokens["alice"])
    port = await stop_gateway(stack)
    provider_env.enqueue(Text("Answered on the laptop.", chunk=4))
    asked = await laptop.grizz("ask", "are you there?")
    assert asked.exit_code == 0, asked.stderr
    assert asked.stdout == "Answered on the laptop.\n"
    assert "Answering directly" in asked.stderr
    assert laptop.rows("SELECT * FROM pending_sends") == []
    queued = laptop.rows("SELECT entity FROM outbox WHERE entity = 'messages'")
    assert len(queued) == 2

    down = await laptop.grizz("sync")
    assert down.exit_code == 1
    assert "unreachable" in down.stderr and down.stderr.count("\n") == 1

    await start_gateway(stack, port)
    synced = await laptop.grizz("sync")
    assert synced.exit_code == 0, synced.stderr
    assert synced.stdout.startswith("pushed 3, ")  # the day and both messages
    assert (await laptop.grizz("sync")).stdout.startswith("pushed 0, ")
    assert await _server_rows(stack, laptop) == [
        ("assistant", "Answered on the laptop.", "complete"),
        ("user", "are you there?", "complete"),
    ]
    assert len(provider_env.requests) == 1  # nobody answered it twice


async def test_offline_without_a_provider_keeps_it_pending_until_sync(
    stack: Stack, homes: Callable[[str], Home], provider_env: FakeOpenAI
) -> None:
    laptop = homes("laptop")
    laptop.env = env_without_provider()
    await laptop.login(stack.url, stack.tokens["alice"])
    port = await stop_gateway(stack)
    asked = await laptop.grizz("ask", "remember me?")
    assert asked.exit_code == 1
    assert asked.stderr == SAVED
    assert asked.stdout == ""
    assert len(laptop.rows("SELECT * FROM pending_sends")) == 1
    status = await laptop.grizz("status")
    assert "(1 messages not yet sent)" in status.stdout

    await start_gateway(stack, port)
    provider_env.enqueue(Text("Of course I do.", chunk=4))
    synced = await laptop.grizz("sync")
    assert synced.exit_code == 0, synced.stderr
    assert synced.stdout.startswith("pushed 1, sent 1, pulled ")
    assert laptop.rows("SELECT * FROM pending_sends") == []
    local = laptop.rows("SELECT role, content, status FROM messages ORDER BY role")
    assert [tuple(r.values()) for r in local] == [
        ("assistant", "Of course I do.", "complete"),
        ("user", "remember me?", "complete"),
    ]
    assert (await laptop.grizz("sync")).stdout.startswith("pushed 0, pulled ")
    assert await _server_rows(stack, laptop) == sorted(
        (r["role"], r["content"], r["status"]) for r in local
    )
    assert len(provider_env.requests) == 1


async def test_a_pending_message_goes_up_with_the_next_ask_exactly_once(
    stack: Stack, homes: Callable[[str], Home], provider_env: FakeOpenAI
) -> None:
    laptop = homes("laptop")
    await laptop.login(stack.url, stack.tokens["alice"])
    await laptop.grizz("config", "set", "sync.fallback", "false")
    port = await stop_gateway(stack)
    first = await laptop.grizz("ask", "first")
    assert (first.exit_code, first.stderr) == (1, SAVED)
    assert provider_env.requests == []  # fallback off: nobody answered directly
    await start_gateway(stack, port)
    provider_env.enqueue(Text("one"), Text("two"))
    second = await laptop.grizz("ask", "second")
    assert second.exit_code == 0, second.stderr
    assert (await laptop.grizz("sync")).exit_code == 0
    rows = await _server_rows(stack, laptop)
    assert sorted(r[1] for r in rows if r[0] == Role.USER) == ["first", "second"]
    assert len([r for r in rows if r[0] == Role.ASSISTANT]) == 2
    assert len(provider_env.requests) == 2
    assert laptop.rows("SELECT * FROM pending_sends") == []
