"""Full-text search over messages and memory (FTS5)."""

from __future__ import annotations

import re

from grizz_core.domain import SearchHit
from grizz_core.words import STOP_WORDS
from grizz_tui.store.db import Database

_WORD = re.compile(r"\w+", re.UNICODE)

MARK_START, MARK_END = "\x02", "\x03"
"""What surrounds a match in `SearchHit.snippet`: characters no message holds,
so a `[` or `]` in the text itself survives (`marked` turns them into brackets)."""
COUNT_CAP = 10_000
"""`count` stops here: counting every match of a common word over a million
messages would cost more than the search."""


def marked(snippet: str, start: str = "[", end: str = "]") -> str:
    """`snippet` with its match marks replaced by `start`/`end`."""
    return snippet.replace(MARK_START, start).replace(MARK_END, end)


def fts_query(text: str, *, any_word: bool = False, prefix: bool = False) -> str:
    """Turn free text into a safe FTS5 query: quoted words, AND (or OR) joined.

    User input such as `don't`, `C++` or `a-b` would otherwise be FTS syntax
    errors. Words match whole, stemmed (porter: "kayak" finds "kayaking").
    `prefix` also lets the last word match as a prefix (search-as-you-type);
    without a prefix index that costs ~100 ms over a million messages for a
    short common prefix, so it is opt-in (docs/benchmarks.md).
    """
    words = _WORD.findall(text)
    if any_word:
        words = [w for w in words if w.lower() not in STOP_WORDS and len(w) > 1]
    if not words:
        return ""
    quoted = [f'"{w}"' for w in words]
    if prefix and not any_word:
        quoted[-1] += "*"
    return (" OR " if any_word else " ").join(quoted)


def search(
    db: Database, query: str, *, limit: int = 20, prefix: bool = False
) -> list[SearchHit]:
    """Messages and memory notes matching `query`; notes first, then newest messages.

    `prefix` lets the last word match as a prefix (see `fts_query`).
    """
    match = fts_query(query, prefix=prefix)
    if not match:
        return []
    hits = [
        SearchHit(
            kind="memory",
            id=row["id"],
            snippet=row["snip"],
            title=row["title"],
            created_at=row["created_at"],
        )
        for row in db.query(
            "SELECT memory.id, memory.title, memory.created_at,"
            " snippet(memory_fts, -1, char(2), char(3), '…', 12) AS snip"
            " FROM memory_fts JOIN memory ON memory.rowid = memory_fts.rowid"
            " WHERE memory_fts MATCH ? AND memory.deleted = 0"
            " ORDER BY memory_fts.rank LIMIT ?",
            [match, limit],
        )
    ]
    # Newest first by rowid: FTS5 walks its doclist backwards and stops after
    # `limit` hits, where bm25 ranking would score every match of a common
    # word across a million messages (docs/benchmarks.md).
    hits += [
        SearchHit(
            kind="message",
            id=row["id"],
            snippet=row["snip"],
            day=row["day"],
            role=row["role"],
            created_at=row["created_at"],
        )
        for row in db.query(
            "SELECT m.id, m.role, m.created_at, c.day,"
            " snippet(messages_fts, 0, char(2), char(3), '…', 12) AS snip"
            " FROM messages_fts JOIN messages m ON m.rowid = messages_fts.rowid"
            " JOIN conversations c ON c.id = m.conversation_id"
            " WHERE messages_fts MATCH ? AND m.deleted = 0"
            " ORDER BY messages_fts.rowid DESC LIMIT ?",
            [match, limit],
        )
    ]
    return hits


def count(db: Database, query: str, *, prefix: bool = False) -> int:
    """How many live messages and notes match `query` (at most `COUNT_CAP`)."""
    match = fts_query(query, prefix=prefix)
    if not match:
        return 0
    total = 0
    for sql in (
        "SELECT count(*) AS n FROM (SELECT 1 FROM memory_fts"
        " JOIN memory ON memory.rowid = memory_fts.rowid"
        " WHERE memory_fts MATCH ? AND memory.deleted = 0 LIMIT ?)",
        "SELECT count(*) AS n FROM (SELECT 1 FROM messages_fts"
        " JOIN messages m ON m.rowid = messages_fts.rowid"
        " WHERE messages_fts MATCH ? AND m.deleted = 0 LIMIT ?)",
    ):
        total += next(iter(db.query(sql, [match, COUNT_CAP - total])))["n"]
    return total
