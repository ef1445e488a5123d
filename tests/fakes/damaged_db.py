"""A Grizz database with a valid header and damaged pages (a bad disk, a
copy cut short): it opens, and fails only where a read touches the damage."""

from __future__ import annotations

from pathlib import Path

PAGE = 4096


def make_damaged_db(path: Path) -> bytes:
    """Write 30 days of messages to `path`, then scribble over some of the
    pages in the middle (the header and the schema pages are intact).

    Returns:
        The file's bytes after the damage (to check nothing was written).
    """
    from grizz_core.domain import Role
    from grizz_tui.store import conversations as conv
    from grizz_tui.store.db import open_database

    db = open_database(path)
    for day in range(1, 31):
        conversation = conv.ensure_conversation(db, f"2026-11-{day:02d}", "UTC")
        for i in range(20):
            conv.add_message(
                db,
                conversation_id=conversation.id,
                role=Role.USER,
                content=f"day {day} message {i} " * 30,
            )
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    data = bytearray(path.read_bytes())
    pages = len(data) // PAGE
    for page in range(pages // 2, pages // 2 + 20, 2):
        data[page * PAGE : page * PAGE + 200] = bytes(range(200))
    path.write_bytes(bytes(data))
    return bytes(data)
