"""Clock skew between devices: an edit that loses last-writer-wins is replaced on
the device that made it by the row that won (found by test_convergence)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from tests.server.conftest import Stack
from tests.sync.conftest import Home


def _edit_with_clock(home: Home, note_id: str, text: str, skew_s: float) -> None:
    """Edit a note as a device whose clock is `skew_s` seconds off would."""
    stamp = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=skew_s)
    db = home.db()
    try:
        db.execute(
            "UPDATE memory SET content = ?, updated_at = ? WHERE id = ?",
            [text, stamp.isoformat(timespec="microseconds"), note_id],
        )
        db.conn.commit()
    finally:
        db.close()


async def test_a_losing_edit_is_replaced_by_the_winner_on_the_next_sync(
    stack: Stack, homes: Callable[[str], Home]
) -> None:
    laptop = homes("laptop")
    await laptop.login(stack.url, stack.tokens["alice"])
    assert (await laptop.grizz("memory", "add", "likes honey")).exit_code == 0
    assert (await laptop.grizz("sync")).stdout == "pushed 1, pulled 1\n"
    note = laptop.rows("SELECT id FROM memory")[0]["id"]

    _edit_with_clock(laptop, note, "likes salmon", skew_s=-3600)  # clock behind
    synced = await laptop.grizz("sync")
    assert synced.exit_code == 0, synced.stderr
    assert laptop.rows("SELECT content FROM memory") == [{"content": "likes honey"}]
    assert laptop.rows("SELECT * FROM outbox") == []
    assert (await laptop.grizz("sync")).stdout == "pushed 0, pulled 0\n"
    server = stack.store.for_user(stack.user_ids["alice"])
    changes, _, _ = await server.pull(0, 100)
    assert [c["data"]["content"] for c in changes] == ["likes honey"]
