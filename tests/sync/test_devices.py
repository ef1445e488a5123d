"""Two devices of one user through a real server: ask, sync, notes; and a
second user who sees nothing."""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.fakes.openai_server import FakeOpenAI, Text
from tests.server.conftest import Stack
from tests.sync.conftest import Home


async def _two_devices(stack: Stack, homes: Callable[[str], Home]) -> tuple[Home, Home]:
    laptop, desktop = homes("laptop"), homes("desktop")
    await laptop.login(stack.url, stack.tokens["alice"])
    token, _ = await stack.store.add_token("alice", "alice-desktop")
    await desktop.login(stack.url, token)
    return laptop, desktop


async def test_a_reply_asked_on_one_device_arrives_on_the_other(
    stack: Stack, homes: Callable[[str], Home], provider_env: FakeOpenAI
) -> None:
    laptop, desktop = await _two_devices(stack, homes)
    provider_env.enqueue(Text("Hello from the den, friend!", chunk=3))
    asked = await laptop.grizz("ask", "Hi", "Grizz!")
    assert asked.exit_code == 0, asked.stderr
    assert asked.stdout == "Hello from the den, friend!\n"
    assert len(provider_env.requests) == 1  # the server's worker answered

    mine = laptop.rows("SELECT id, role, content, status FROM messages ORDER BY role")
    assert [(m["role"], m["content"], m["status"]) for m in mine] == [
        ("assistant", "Hello from the den, friend!", "complete"),
        ("user", "Hi Grizz!", "complete"),
    ]
    assert laptop.rows("SELECT * FROM pending_sends") == []
    # the sent message and the server's reply are not queued to go up again
    assert laptop.rows("SELECT * FROM outbox WHERE entity = 'messages'") == []

    synced = await desktop.grizz("sync")
    assert synced.exit_code == 0, synced.stderr
    assert synced.stdout.startswith("pushed 0, pulled ")
    theirs = desktop.rows(
        "SELECT id, role, content, status FROM messages ORDER BY role"
    )
    assert theirs == mine

    again = await laptop.grizz("sync")
    assert again.exit_code == 0, again.stderr
    server = stack.store.for_user(stack.user_ids["alice"])
    conv_id = laptop.rows("SELECT conversation_id FROM messages")[0]["conversation_id"]
    stored = await server.recent_messages(conv_id, limit=10)
    assert sorted(m.id for m in stored) == sorted(m["id"] for m in mine)


async def test_ask_json_through_the_server_keeps_its_shape(
    stack: Stack, homes: Callable[[str], Home], provider_env: FakeOpenAI
) -> None:
    laptop = homes("laptop")
    await laptop.login(stack.url, stack.tokens["alice"])
    provider_env.enqueue(Text("Shaped.", chunk=2))
    result = await laptop.grizz("ask", "--json", "shape?")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert {
        "reply",
        "conversation_id",
        "message_id",
        "user_message_id",
        "model",
        "usage",
        "timing",
        "finish_reason",
        "status",
    } <= set(data)
    assert (data["reply"], data["status"]) == ("Shaped.", "complete")
    stored = laptop.rows("SELECT id FROM messages WHERE role = 'assistant'")
    assert stored == [{"id": data["message_id"]}]


async def test_notes_added_edited_and_deleted_on_one_device_reach_the_other(
    stack: Stack, homes: Callable[[str], Home]
) -> None:
    laptop, desktop = await _two_devices(stack, homes)
    for words in (["likes", "honey"], ["lives", "in", "Berlin"], ["has", "a", "cat"]):
        added = await desktop.grizz("memory", "add", *words)
        assert added.exit_code == 0, added.stderr
    ids = {
        r["content"]: r["id"] for r in desktop.rows("SELECT id, content FROM memory")
    }
    first = await desktop.grizz("sync")
    assert first.stdout == "pushed 3, pulled 3\n", first.stderr
    assert (await laptop.grizz("sync")).stdout == "pushed 0, pulled 3\n"

    edit = await desktop.grizz(
        "memory", "edit", ids["lives in Berlin"][:8], "lives in Hamburg"
    )
    assert edit.exit_code == 0, edit.stderr
    forget = await desktop.grizz("memory", "rm", ids["has a cat"][:8])
    assert forget.exit_code == 0, forget.stderr
    assert (await desktop.grizz("sync")).stdout.startswith("pushed 2, ")
    assert (await laptop.grizz("sync")).stdout == "pushed 0, pulled 2\n"

    listed = await laptop.grizz("memory", "list", "--json")
    assert sorted(n["content"] for n in json.loads(listed.stdout)) == [
        "likes honey",
        "lives in Hamburg",
    ]
    deleted = laptop.rows("SELECT deleted FROM memory WHERE id = ?", [ids["has a cat"]])
    assert deleted == [{"deleted": 1}]
    assert laptop.rows("SELECT * FROM outbox") == []


async def test_another_user_sees_nothing(
    stack: Stack, homes: Callable[[str], Home], provider_env: FakeOpenAI
) -> None:
    laptop, bobs = homes("laptop"), homes("bob")
    await laptop.login(stack.url, stack.tokens["alice"])
    await bobs.login(stack.url, stack.tokens["bob"])
    await laptop.grizz("memory", "add", "alice's secret")
    assert (await laptop.grizz("ask", "hello")).exit_code == 0
    assert (await laptop.grizz("sync")).exit_code == 0
    synced = await bobs.grizz("sync")
    assert synced.stdout == "pushed 0, pulled 0\n"
    assert bobs.rows("SELECT * FROM messages") == []
    assert bobs.rows("SELECT * FROM memory") == []
