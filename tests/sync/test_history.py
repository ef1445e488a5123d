"""History: a device used before its first login merges with another device's
days; a catch-up cut short resumes at the next page."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from grizz_core.domain import Role, day_conversation_id
from grizz_tui.store import conversations as conv
from grizz_tui.store import memory as mem
from grizz_tui.sync.client import SyncClient
from grizz_tui.sync.engine import SyncEngine
from grizz_tui.sync.state import load_state
from tests.server.conftest import Stack
from tests.sync.conftest import Home
from tests.sync.fill import fill, history


def _write_days(home: Home, days: list[str], who: str) -> None:
    db = home.db()
    try:
        for day in days:
            c = conv.ensure_conversation(db, day, "UTC")
            conv.add_message(
                db, conversation_id=c.id, role=Role.USER, content=f"{who} {day}"
            )
            conv.add_message(
                db, conversation_id=c.id, role=Role.ASSISTANT, content=f"to {who}"
            )
        mem.add_memory(db, f"{who} was here")
    finally:
        db.close()


async def test_weeks_of_offline_history_merge_with_another_devices_days(
    stack: Stack, homes: Callable[[str], Home]
) -> None:
    laptop, desktop = homes("laptop"), homes("desktop")
    month = [f"2026-03-{d:02d}" for d in range(1, 31)]
    _write_days(laptop, month, "laptop")  # 30 days before its first login
    _write_days(desktop, month[10:20], "desktop")  # 10 of the same days
    token, _ = await stack.store.add_token("alice", "alice-desktop")
    await desktop.login(stack.url, token)
    assert (await desktop.grizz("sync")).stdout == "pushed 31, pulled 31\n"

    await laptop.login(stack.url, stack.tokens["alice"])
    first = await laptop.grizz("sync")
    assert first.exit_code == 0, first.stderr
    assert first.stdout.startswith("pushed 91, ")  # 30 days, 60 messages, 1 note
    assert (await desktop.grizz("sync")).exit_code == 0

    for home in (laptop, desktop):
        days = home.rows("SELECT id, day FROM conversations ORDER BY day")
        assert [d["day"] for d in days] == month
        assert all(d["id"] == day_conversation_id(d["day"]) for d in days)
        assert len(home.rows("SELECT id FROM messages")) == 80
        assert len(home.rows("SELECT id FROM memory")) == 2
        assert home.rows("SELECT * FROM outbox") == []
    shared = day_conversation_id("2026-03-15")
    both = laptop.rows(
        "SELECT content FROM messages WHERE conversation_id = ? AND role = 'user'"
        " ORDER BY content",
        [shared],
    )
    assert [r["content"] for r in both] == ["desktop 2026-03-15", "laptop 2026-03-15"]
    server = stack.store.for_user(stack.user_ids["alice"])
    assert len(await server.recent_messages(shared, limit=100)) == 4


class Killed(Exception):
    """Stands for the process dying between two pages."""


async def test_a_catch_up_cut_short_resumes_without_refetching_pages(
    stack: Stack, homes: Callable[[str], Home]
) -> None:
    await fill(stack.store.for_user(stack.user_ids["alice"]), history(1400, 100))
    total = 14 + 1400 + 100
    home = homes("new")
    await home.login(stack.url, stack.tokens["alice"])

    db = home.db()
    client = SyncClient(stack.url, stack.tokens["alice"])
    pages: list[int] = []

    def die_after_two(cursor: int) -> None:
        pages.append(cursor)
        if len(pages) == 2:
            raise Killed

    try:
        await client.open()
        with pytest.raises(Killed):
            await SyncEngine(db, client, on_page=die_after_two).pull()
    finally:
        await client.close()
    state = load_state(db)
    db.close()
    assert state.cursor == pages[1] > 0
    applied = (
        len(home.rows("SELECT id FROM messages"))
        + len(home.rows("SELECT id FROM conversations"))
        + len(home.rows("SELECT id FROM memory"))
    )
    assert applied == state.cursor  # every page up to the cursor, nothing after

    resumed = await home.grizz("sync")
    assert resumed.exit_code == 0, resumed.stderr
    assert resumed.stdout == f"pushed 0, pulled {total - applied}\n"
    assert len(home.rows("SELECT id FROM messages")) == 1400
    db = home.db()
    try:
        assert load_state(db).cursor == total
    finally:
        db.close()
