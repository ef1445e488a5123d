"""What the day calendar reads: message counts per day of a month, one day's first line.

Only the months on screen are read (a 5-year database must stay instant): each
query goes through the unique index on `conversations.day` and
`messages_by_conversation`. Must not import: the TUI or the core's providers.
"""

from __future__ import annotations

from grizz_tui.store.db import Database


def month_days(db: Database, month: str) -> dict[str, int]:
    """Live message counts of the days of `month` ("YYYY-MM") that have any."""
    rows = db.query(
        "SELECT c.day AS day, COUNT(m.id) AS n FROM conversations c"
        " JOIN messages m ON m.conversation_id = c.id AND m.deleted = 0"
        " WHERE c.day >= ? AND c.day < ? GROUP BY c.day",
        [f"{month}-01", f"{month}-32"],
    )
    return {row["day"]: row["n"] for row in rows}


def first_line(db: Database, day: str) -> str:
    """The first line of `day`'s first live user message ("" when none)."""
    rows = list(
        db.query(
            "SELECT m.content FROM conversations c JOIN messages m"
            " ON m.conversation_id = c.id WHERE c.day = ? AND m.role = 'user'"
            " AND m.deleted = 0 ORDER BY m.created_at, m.rowid LIMIT 1",
            [day],
        )
    )
    text = rows[0]["content"].strip() if rows else ""
    return text.splitlines()[0][:120] if text else ""
