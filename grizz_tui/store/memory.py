"""Grizz's memory: notes about the user, soft-deleted (tombstones) so deletes sync."""

from __future__ import annotations

import json
import uuid
from typing import Any

from grizz_core.domain import MemoryItem, utc_now
from grizz_tui.store.db import Database, writing
from grizz_tui.store.search import fts_query


def add_memory(
    db: Database,
    content: str,
    *,
    title: str = "",
    kind: str = "note",
    properties: dict[str, Any] | None = None,
    memory_id: str | None = None,
) -> MemoryItem:
    now = utc_now()
    row = {
        "id": memory_id or str(uuid.uuid4()),
        "kind": kind,
        "title": title.strip(),
        "content": content.strip(),
        "properties": json.dumps(properties or {}),
        "file": "",
        "mime": "",
        "deleted": 0,
        "created_at": now,
        "updated_at": now,
    }
    with writing(db):
        db.insert("memory", row)
    return MemoryItem.from_row(row)


def get_memory(
    db: Database, ref: str, *, include_deleted: bool = False
) -> MemoryItem | None:
    """A note by full id or by a unique id prefix (≥ 4 characters)."""
    where = "" if include_deleted else " AND deleted = 0"
    rows = list(db.query(f"SELECT * FROM memory WHERE id = ?{where}", [ref]))
    if not rows and len(ref) >= 4:
        rows = list(
            db.query(
                f"SELECT * FROM memory WHERE id LIKE ?{where} LIMIT 2", [ref + "%"]
            )
        )
        if len(rows) != 1:
            return None
    return MemoryItem.from_row(rows[0]) if rows else None


def update_memory(
    db: Database,
    memory_id: str,
    *,
    content: str | None = None,
    title: str | None = None,
) -> MemoryItem | None:
    item = get_memory(db, memory_id)
    if item is None:
        return None
    with writing(db):
        db.execute(
            "UPDATE memory SET content = ?, title = ?, updated_at = ? WHERE id = ?",
            [
                item.content if content is None else content.strip(),
                item.title if title is None else title.strip(),
                utc_now(),
                item.id,
            ],
        )
    return get_memory(db, item.id)


def delete_memory(db: Database, memory_id: str) -> MemoryItem | None:
    """Tombstone a note; returns it, or None if there was no such live note."""
    item = get_memory(db, memory_id)
    if item is None:
        return None
    with writing(db):
        db.execute(
            "UPDATE memory SET deleted = 1, updated_at = ? WHERE id = ?",
            [utc_now(), item.id],
        )
    return item


def restore_memory(db: Database, memory_id: str) -> MemoryItem | None:
    """Undo a delete (the app's undo after Grizz forgets something)."""
    with writing(db):
        db.execute(
            "UPDATE memory SET deleted = 0, updated_at = ? WHERE id = ?",
            [utc_now(), memory_id],
        )
    return get_memory(db, memory_id)


def list_memory(db: Database, *, limit: int | None = None) -> list[MemoryItem]:
    """Live notes, newest first."""
    sql = "SELECT * FROM memory WHERE deleted = 0 ORDER BY updated_at DESC, rowid DESC"
    if limit:
        sql += f" LIMIT {int(limit)}"
    return [MemoryItem.from_row(row) for row in db.query(sql)]


def search_memory(
    db: Database, query: str, *, limit: int = 10, any_word: bool = False
) -> list[MemoryItem]:
    """Live notes matching `query` (FTS5, best first). `any_word` ORs the words."""
    match = fts_query(query, any_word=any_word)
    if not match:
        return []
    rows = db.query(
        "SELECT memory.* FROM memory JOIN memory_fts ON memory_fts.rowid = memory.rowid"
        " WHERE memory_fts MATCH ? AND memory.deleted = 0"
        " ORDER BY memory_fts.rank LIMIT ?",
        [match, limit],
    )
    return [MemoryItem.from_row(row) for row in rows]
