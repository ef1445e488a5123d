"""Sync for one user, the download half: `pull` (changes after a cursor).

Must not import: the provider, websockets, redis.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, bindparam, select

from grizz_core.domain import MemoryItem, Message
from grizz_core.errors import UsageError

from . import statements as q
from .backend import Conn, StoreBackend
from .schema import ENTITY_TABLES, attachments
from .sync import chunks
from .validate import Invalid, prepare

MAX_PULL = 1000
MAX_SEQ = 10**19 - 1
"""The largest change number a page is sized for (19 digits)."""
MAX_CURSOR = 2**63 - 1
"""The largest cursor the database can compare with (a signed 64-bit integer);
a larger `after` is read as this one (no user has that many changes)."""


async def pull(
    backend: StoreBackend,
    user_id: str,
    after: int,
    limit: int = 500,
    max_bytes: int | None = None,
) -> tuple[list[dict[str, Any]], int, bool]:
    """The user's rows changed after cursor `after`, oldest change first.

    Each row appears once, in its latest state, with the change number of its
    last write; all of it is read in one snapshot, so a concurrent write can
    never slip in below the returned cursor. With `max_bytes`, the page ends
    early before its changes (as compact JSON, with the commas between them)
    would take more than that many bytes (at least one change is always
    returned), so it fits a frame; `has_more` says so. The
    returned cursor never exceeds the user's current change number, whatever
    `after` was (an `after` past 2^63 - 1 is read as 2^63 - 1).

    Returns:
        (changes `[{"seq", "entity", "id", "data"}]`, next cursor, has_more).

    Raises:
        UsageError: `after` is not a non-negative integer.
    """
    if not isinstance(after, int) or isinstance(after, bool) or after < 0:
        raise UsageError("The sync cursor must be a non-negative integer.")
    after = min(after, MAX_CURSOR)  # beyond it the database's integers overflow
    limit = max(1, min(int(limit), MAX_PULL))
    found: list[tuple[int, str, dict[str, Any]]] = []
    async with backend.snapshot() as conn:
        for entity, table in ENTITY_TABLES.items():
            rows = await conn.execute(
                _changed_rows(table),
                {"k_uid": user_id, "k_after": after, "k_limit": limit + 1},
            )
            found += [(r.seq, entity, dict(r._mapping)) for r in rows]
        found.sort(key=lambda item: item[0])
        has_more = len(found) > limit
        found = found[:limit]
        # nothing after `after`: the cursor is the user's current change
        # number, never more, even when `after` is beyond it (a device's cursor
        # from a restored or other server): a larger one would skip changes
        top = (
            0
            if found
            else int((await conn.run(q.current_seq, {"k_uid": user_id})).scalar() or 0)
        )
        files = await _attachments_of(
            conn,
            user_id,
            [
                row["id"]
                for _, entity, row in found
                if entity == "messages" and row["has_attachments"]
            ],
        )
    changes: list[dict[str, Any]] = []
    size = 0
    for seq, entity, row in found:
        change = {"seq": seq, "entity": entity, "id": row["id"]}
        change["data"] = _data(entity, row, files)
        if max_bytes is not None:
            size += change_bytes(change) + (1 if changes else 0)  # + a comma
            if changes and size > max_bytes:
                return changes, changes[-1]["seq"], True
        changes.append(change)
    return changes, (found[-1][0] if found else top), has_more


async def changes_of(
    backend: StoreBackend,
    user_id: str,
    rows: Sequence[tuple[str, str]],
    max_bytes: int | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """These rows as `pull` gives them (latest state, own `seq`), oldest first.

    Args:
        rows: (entity, id) pairs; rows that do not exist are left out.
        max_bytes: when the changes (as compact JSON, with the commas between
            them) would take more, none are returned.

    Returns:
        (changes, the user's current change number), read in one snapshot.
    """
    found: list[tuple[int, str, dict[str, Any]]] = []
    async with backend.snapshot() as conn:
        for entity, table in ENTITY_TABLES.items():
            ids = sorted({i for e, i in rows if e == entity})
            for chunk in chunks(ids):
                result = await conn.execute(
                    select(table).where(
                        table.c.user_id == user_id, table.c.id.in_(chunk)
                    )
                )
                found += [(r.seq, entity, dict(r._mapping)) for r in result]
        top = int((await conn.run(q.current_seq, {"k_uid": user_id})).scalar() or 0)
        files = await _attachments_of(
            conn,
            user_id,
            [r["id"] for _, e, r in found if e == "messages" and r["has_attachments"]],
        )
    found.sort(key=lambda item: item[0])
    changes = [
        {
            "seq": seq,
            "entity": entity,
            "id": row["id"],
            "data": _data(entity, row, files),
        }
        for seq, entity, row in found
    ]
    if max_bytes is not None and sum(change_bytes(c) + 1 for c in changes) > max_bytes:
        return [], top
    return changes, top


def change_bytes(change: dict[str, Any]) -> int:
    """The exact size of one change in a frame (compact JSON, UTF-8)."""
    return len(json.dumps(change, separators=(",", ":"), ensure_ascii=False).encode())


def pulled_bytes(change: Any) -> int | None:
    """How many bytes pushed `change` will take in a `changes` frame once stored.

    Measured on the row as it would be stored (defaults filled in, times
    normalised) with the largest `seq` a change can carry. None when the
    change is invalid (the push rejects it with its own reason).
    """
    try:
        item = prepare(0, change)
    except Invalid:
        return None
    row = {**item.row, "has_attachments": bool(item.attachments)}
    files = {
        item.id: [
            {
                "id": a["id"],
                "name": a["name"],
                "mime": a["mime"],
                "size": a["size"],
                "sha256": a["sha256"],
                "content_b64": "",
            }
            for a in item.attachments
        ]
    }
    encoded: int = sum(4 * ((a["size"] + 2) // 3) for a in item.attachments)
    pulled = {"seq": MAX_SEQ, "entity": item.entity, "id": item.id}
    pulled["data"] = _data(item.entity, row, files)
    return change_bytes(pulled) + encoded


@functools.cache
def _changed_rows(table: Table) -> Any:
    return (
        select(table)
        .where(
            table.c.user_id == bindparam("k_uid"), table.c.seq > bindparam("k_after")
        )
        .order_by(table.c.seq)
        .limit(bindparam("k_limit"))
    )


async def _attachments_of(
    conn: Conn, user_id: str, message_ids: list[str]
) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    a = attachments.c
    for chunk in chunks(message_ids):
        rows = await conn.execute(
            select(attachments)
            .where(a.user_id == user_id, a.message_id.in_(chunk))
            .order_by(a.message_id, a.position)
        )
        for r in rows:
            out.setdefault(r.message_id, []).append(
                {
                    "id": r.id,
                    "name": r.name,
                    "mime": r.mime,
                    "size": r.size,
                    "sha256": r.sha256,
                    "content_b64": base64.b64encode(r.content).decode(),
                }
            )
    return out


def conversation_change(row: dict[str, Any]) -> dict[str, Any]:
    """A stored conversation row (with its `seq`) as a pull change."""
    return {
        "seq": row["seq"],
        "entity": "conversations",
        "id": row["id"],
        "data": _data("conversations", row, {}),
    }


def _data(
    entity: str, row: dict[str, Any], files: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    if entity == "messages":
        data = Message.from_row(row).to_dict()
        if row["has_attachments"]:
            data["attachments"] = files.get(row["id"], [])
        return data
    if entity == "memory":
        return MemoryItem.from_row(row).to_dict()
    return {
        "id": row["id"],
        "day": row["day"],
        "tz": row["tz"],
        "title": row["title"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "deleted": bool(row["deleted"]),
    }
