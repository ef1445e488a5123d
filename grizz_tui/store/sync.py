"""The local half of sync: the outbox, pending sends, applied changes, sync state.

- The outbox (migration m004) lists rows written on this device and not yet
  pushed; triggers fill it. `read_outbox` turns it into push changes in the
  order the server needs (a conversation before its messages), and
  `mark_pushed` removes an entry only if the row has not changed since it was
  read (compare-and-delete on `changed_at`).
- Pending sends (m005) are user messages the server has not accepted yet: they
  go up with `send` so Grizz answers them, never as pushed rows.
- `apply_changes` writes a pulled page and its cursor in one transaction with
  `sync_state.applying` set, so the outbox triggers do not queue them again.

Must not import: textual, websockets, the companion or the providers.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from grizz_core.domain import MemoryItem, Message, Role, utc_now
from grizz_tui.store.conversations import add_message, attachments_of
from grizz_tui.store.conversations import ensure_conversation as _ensure
from grizz_tui.store.db import Database, writing

ENTITIES = ("conversations", "messages", "memory")
_RANK = "CASE o.entity WHEN 'conversations' THEN 0 WHEN 'messages' THEN 1 ELSE 2 END"


@dataclass(frozen=True)
class OutboxItem:
    """One outbox entry with the change to push for it."""

    entity: str
    id: str
    changed_at: str
    rank: int
    change: dict[str, Any]
    """`{"entity", "id", "data"}`, the shape `push` takes."""


def read_outbox(
    db: Database, *, limit: int, after: tuple[int, str] = (-1, "")
) -> list[OutboxItem]:
    """Up to `limit` outbox entries after key `after` (rank, id), in push order.

    Pending sends and replies still streaming are left out: the first go up
    with `send`, the second once they are finished.
    """
    rows = db.query(
        f"SELECT o.entity, o.id, o.changed_at, {_RANK} AS rank FROM outbox o"
        f" WHERE ({_RANK}, o.id) > (?, ?)"
        " AND NOT (o.entity = 'messages' AND (o.id IN"
        " (SELECT message_id FROM pending_sends) OR EXISTS (SELECT 1 FROM messages m"
        " WHERE m.id = o.id AND m.status = 'streaming')))"
        " ORDER BY rank, o.id LIMIT ?",
        [after[0], after[1], limit],
    )
    items = []
    for row in list(rows):
        data = _data(db, row["entity"], row["id"])
        if data is None:  # the row is gone (never happens: deletes are tombstones)
            continue
        change = {"entity": row["entity"], "id": row["id"], "data": data}
        items.append(
            OutboxItem(row["entity"], row["id"], row["changed_at"], row["rank"], change)
        )
    return items


def _data(db: Database, entity: str, row_id: str) -> dict[str, Any] | None:
    rows = list(db.query(f"SELECT * FROM {entity} WHERE id = ?", [row_id]))
    if not rows:
        return None
    row = rows[0]
    if entity == "memory":
        return MemoryItem.from_row(row).to_dict()
    if entity == "conversations":
        return {
            "id": row["id"],
            "day": row["day"],
            "tz": row["tz"],
            "title": row["title"],
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
            "deleted": False,
        }
    data = Message.from_row(row).to_dict()
    files = attachments_of(db, row_id)
    if files:
        data["attachments"] = [
            {
                "id": a.id,
                "name": a.name,
                "mime": a.mime,
                "size": a.size,
                "sha256": a.sha256,
                "content_b64": base64.b64encode(a.content).decode(),
            }
            for a in files
        ]
    return data


def mark_pushed(db: Database, items: list[OutboxItem]) -> None:
    """Drop these entries, unless their row changed again since it was read."""
    with writing(db):
        db.conn.executemany(
            "DELETE FROM outbox WHERE entity = ? AND id = ? AND changed_at = ?",
            [(i.entity, i.id, i.changed_at) for i in items],
        )


def outbox_counts(db: Database) -> dict[str, int]:
    """Entries waiting to be pushed (or sent), by entity."""
    counts = dict.fromkeys(ENTITIES, 0)
    for row in db.query("SELECT entity, COUNT(*) AS n FROM outbox GROUP BY entity"):
        counts[row["entity"]] = row["n"]
    return counts


def requeue_everything(db: Database) -> None:
    """Put every row in the outbox again (a new server must get the whole history)."""
    with writing(db):
        for table in ENTITIES:
            db.execute(
                "INSERT OR IGNORE INTO outbox (entity, id, changed_at)"
                f" SELECT '{table}', id, updated_at FROM {table}"
            )


# -- pending sends ------------------------------------------------------------


@dataclass(frozen=True)
class PendingSend:
    """A stored user message the server has not accepted yet."""

    message: Message
    day: str
    tz: str


def store_outgoing(db: Database, *, day: str, tz: str, text: str) -> Message:
    """Store a user message for `day` and mark it pending, in one transaction."""
    with writing(db):
        conversation = _ensure(db, day, tz)
        message = add_message(
            db, conversation_id=conversation.id, role=Role.USER, content=text
        )
        db.execute(
            "INSERT INTO pending_sends (message_id, created_at) VALUES (?, ?)",
            [message.id, utc_now()],
        )
    return message


def pending_sends(db: Database) -> list[PendingSend]:
    """Pending user messages, oldest first."""
    rows = db.query(
        "SELECT m.*, c.day AS c_day, c.tz AS c_tz FROM pending_sends p"
        " JOIN messages m ON m.id = p.message_id"
        " JOIN conversations c ON c.id = m.conversation_id"
        " ORDER BY p.created_at, p.rowid"
    )
    return [PendingSend(Message.from_row(r), r["c_day"], r["c_tz"]) for r in rows]


def clear_pending(db: Database, message_id: str) -> None:
    """The message is no longer waiting for the server (answered directly)."""
    with writing(db):
        db.execute("DELETE FROM pending_sends WHERE message_id = ?", [message_id])


def settle_sent(db: Database, message: dict[str, Any]) -> None:
    """The server accepted a message: store its row; no longer pending or queued."""
    with writing(db):
        apply_rows(db, [{"entity": "messages", "id": message["id"], "data": message}])
        db.execute("DELETE FROM pending_sends WHERE message_id = ?", [message["id"]])
        db.execute(
            "DELETE FROM outbox WHERE entity = 'messages' AND id = ?", [message["id"]]
        )


# -- applying what the server sent ---------------------------------------------


def apply_changes(db: Database, changes: list[dict[str, Any]], cursor: int) -> None:
    """Apply one pulled page and store its cursor, atomically.

    Foreign keys are off meanwhile: a message can arrive a page before its
    conversation (a conversation edited later takes a later change number).
    """
    with _foreign_keys_off(db), writing(db):
        apply_rows(db, changes)
        _set(db, "cursor", str(cursor))


def apply_rows(db: Database, changes: list[dict[str, Any]]) -> None:
    """Upsert server rows without queueing them for push (`applying` is set).

    A row this device changed after its last push, more recently than the
    server's version, is kept: it goes up on the next push and the server
    settles it (last writer wins).
    """
    with writing(db):
        _set(db, "applying", "1")
        local = _unpushed(db)
        taken = []
        for change in sorted(changes, key=lambda c: ENTITIES.index(c["entity"])):
            key = (change["entity"], change["id"])
            mine = local.get(key)
            if mine is not None:
                if mine > change["data"].get("updated_at", ""):
                    continue
                db.execute("DELETE FROM outbox WHERE entity = ? AND id = ?", list(key))
            taken.append(change)
        _upsert(db, taken)
        db.execute("DELETE FROM sync_state WHERE key = 'applying'")


def _unpushed(db: Database) -> dict[tuple[str, str], str]:
    """(entity, id) → local updated_at of every row waiting in the outbox."""
    found: dict[tuple[str, str], str] = {}
    for entity in ENTITIES:
        for row in db.query(
            f"SELECT t.id, t.updated_at FROM outbox o JOIN {entity} t ON t.id = o.id"
            " WHERE o.entity = ?",
            [entity],
        ):
            found[(entity, row["id"])] = row["updated_at"]
    return found


def _upsert(db: Database, changes: list[dict[str, Any]]) -> None:
    conversations = [c["data"] for c in changes if c["entity"] == "conversations"]
    messages = [c["data"] for c in changes if c["entity"] == "messages"]
    notes = [c["data"] for c in changes if c["entity"] == "memory"]
    db.conn.executemany(
        "INSERT INTO conversations (id, day, tz, title, created_at, updated_at)"
        " VALUES (:id, :day, :tz, :title, :created_at, :updated_at)"
        " ON CONFLICT(id) DO UPDATE SET tz = excluded.tz, title = excluded.title,"
        " updated_at = excluded.updated_at",
        conversations,
    )
    db.conn.executemany(
        "INSERT INTO messages (id, conversation_id, role, content, status, model,"
        " metadata, created_at, updated_at, deleted) VALUES (:id, :conversation_id,"
        " :role, :content, :status, :model, :metadata, :created_at, :updated_at,"
        " :deleted) ON CONFLICT(id) DO UPDATE SET content = excluded.content,"
        " status = excluded.status, model = excluded.model,"
        " metadata = excluded.metadata, updated_at = excluded.updated_at,"
        " deleted = max(messages.deleted, excluded.deleted),"
        " created_at = excluded.created_at",
        [_message_row(m) for m in messages],
    )
    db.conn.executemany(
        "INSERT INTO memory (id, kind, title, content, properties, file, mime,"
        " deleted, created_at, updated_at) VALUES (:id, :kind, :title, :content,"
        " :properties, :file, :mime, :deleted, :created_at, :updated_at)"
        " ON CONFLICT(id) DO UPDATE SET kind = excluded.kind, title = excluded.title,"
        " content = excluded.content, properties = excluded.properties,"
        " file = excluded.file, mime = excluded.mime, deleted = excluded.deleted,"
        " updated_at = excluded.updated_at",
        [_memory_row(n) for n in notes],
    )
    db.conn.executemany(
        "INSERT OR IGNORE INTO attachments (id, message_id, name, mime, size,"
        " sha256, content, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                a["id"],
                m["id"],
                a.get("name") or "",
                a.get("mime") or "",
                a.get("size", 0),
                a.get("sha256", ""),
                base64.b64decode(a.get("content_b64") or ""),
                m["created_at"],
            )
            for m in messages
            for a in m.get("attachments") or []
        ],
    )


def _message_row(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": data["id"],
        "conversation_id": data["conversation_id"],
        "role": data["role"],
        "content": data.get("content") or "",
        "status": data.get("status") or "complete",
        "model": data.get("model") or "",
        "metadata": json.dumps(data.get("metadata") or {}),
        "created_at": data["created_at"],
        "updated_at": data.get("updated_at") or data["created_at"],
        "deleted": int(bool(data.get("deleted"))),
    }


def _memory_row(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": data["id"],
        "kind": data.get("kind") or "note",
        "title": data.get("title") or "",
        "content": data.get("content") or "",
        "properties": json.dumps(data.get("properties") or {}),
        "file": data.get("file") or "",
        "mime": data.get("mime") or "",
        "deleted": int(bool(data.get("deleted"))),
        "created_at": data["created_at"],
        "updated_at": data.get("updated_at") or data["created_at"],
    }


@contextlib.contextmanager
def _foreign_keys_off(db: Database) -> Iterator[None]:
    if db.conn.in_transaction:  # the pragma is a no-op inside a transaction
        yield
        return
    db.execute("PRAGMA foreign_keys = OFF")
    try:
        yield
    finally:
        db.execute("PRAGMA foreign_keys = ON")


# -- sync_state ---------------------------------------------------------------


def read_state(db: Database) -> dict[str, str]:
    """Every sync_state key (url, user, device, cursor, last_sync)."""
    return {
        row["key"]: row["value"]
        for row in db.query("SELECT key, value FROM sync_state WHERE key != 'applying'")
    }


def write_state(db: Database, values: dict[str, str]) -> None:
    with writing(db):
        for key, value in values.items():
            _set(db, key, value)


def _set(db: Database, key: str, value: str) -> None:
    db.execute(
        "INSERT INTO sync_state (key, value) VALUES (?, ?)"
        " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [key, value],
    )
