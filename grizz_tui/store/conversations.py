"""Day conversations and their messages.

A conversation's id is derived from its day alone (`day_conversation_id`), so
two devices that start the same day offline create the same conversation.
Messages are append-only; a reply is updated while it streams and ends
`complete`, `interrupted` or `error`.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

from grizz_core.domain import (
    Attachment,
    Conversation,
    DaySummary,
    Message,
    Role,
    Status,
    day_conversation_id,
    utc_now,
)
from grizz_tui.store.db import Database, writing


def _conversation(row: dict[str, Any]) -> Conversation:
    return Conversation(
        id=row["id"],
        day=row["day"],
        tz=row["tz"],
        title=row["title"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def ensure_conversation(db: Database, day: str, tz: str) -> Conversation:
    """Get the conversation of `day`, creating it when it does not exist."""
    conv_id = day_conversation_id(day)
    now = utc_now()
    with writing(db):
        db.execute(
            "INSERT OR IGNORE INTO conversations"
            " (id, day, tz, title, created_at, updated_at) VALUES (?, ?, ?, '', ?, ?)",
            [conv_id, day, tz, now, now],
        )
    found = get_conversation(db, day)
    assert found is not None  # just inserted or already there
    return found


def get_conversation(db: Database, day: str) -> Conversation | None:
    rows = list(db.query("SELECT * FROM conversations WHERE day = ?", [day]))
    return _conversation(rows[0]) if rows else None


def list_days(db: Database, limit: int | None = None) -> list[DaySummary]:
    """Days that have messages, newest first, with a count and a first line."""
    sql = """
        SELECT c.day, c.id, COUNT(m.id) AS n,
            (SELECT content FROM messages f WHERE f.conversation_id = c.id
             AND f.role = 'user' AND f.deleted = 0 ORDER BY f.created_at LIMIT 1)
             AS first
        FROM conversations c JOIN messages m ON m.conversation_id = c.id
        WHERE m.deleted = 0
        GROUP BY c.id ORDER BY c.day DESC"""
    if limit:
        sql += f" LIMIT {int(limit)}"
    return [
        DaySummary(
            day=row["day"],
            conversation_id=row["id"],
            messages=row["n"],
            first_line=(row["first"] or "").strip().splitlines()[0][:80]
            if (row["first"] or "").strip()
            else "",
        )
        for row in db.query(sql)
    ]


def add_message(
    db: Database,
    *,
    conversation_id: str,
    role: Role,
    content: str,
    status: Status = Status.COMPLETE,
    model: str = "",
    metadata: dict[str, Any] | None = None,
    message_id: str | None = None,
    attachments: list[Attachment] | None = None,
) -> Message:
    """Insert a message (and its attachments) in one transaction."""
    now = utc_now()
    row = {
        "id": message_id or str(uuid.uuid4()),
        "conversation_id": conversation_id,
        "role": str(role),
        "content": content,
        "status": str(status),
        "model": model,
        "metadata": json.dumps(metadata or {}),
        "created_at": now,
        "updated_at": now,
        "deleted": 0,
    }
    with writing(db):
        db.insert("messages", row)
        for att in attachments or []:
            db.insert(
                "attachments",
                {
                    "id": att.id,
                    "message_id": row["id"],
                    "name": att.name,
                    "mime": att.mime,
                    "size": att.size,
                    "sha256": att.sha256,
                    "content": att.content,
                    "created_at": now,
                },
            )
        db.execute(
            "UPDATE conversations SET updated_at = ? WHERE id = ?",
            [now, conversation_id],
        )
    return Message.from_row(row)


def update_message(
    db: Database,
    message_id: str,
    *,
    content: str | None = None,
    status: Status | None = None,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Change a message's content, status and/or metadata (merged)."""
    sets: list[str] = ["updated_at = ?"]
    params: list[Any] = [utc_now()]
    if content is not None:
        sets.append("content = ?")
        params.append(content)
    if status is not None:
        sets.append("status = ?")
        params.append(str(status))
    if metadata is not None:
        sets.append("metadata = json_patch(metadata, ?)")
        params.append(json.dumps(metadata))
    params.append(message_id)
    with writing(db):
        db.execute(f"UPDATE messages SET {', '.join(sets)} WHERE id = ?", params)


def delete_message(db: Database, message_id: str) -> bool:
    """Tombstone a message (it stays for sync, hidden everywhere else)."""
    with writing(db):
        cursor = db.execute(
            "UPDATE messages SET deleted = 1, updated_at = ?"
            " WHERE id = ? AND deleted = 0",
            [utc_now(), message_id],
        )
    return cursor.rowcount > 0


def get_message(db: Database, message_id: str) -> Message | None:
    rows = list(db.query("SELECT * FROM messages WHERE id = ?", [message_id]))
    return Message.from_row(rows[0]) if rows else None


def messages_of(db: Database, conversation_id: str) -> list[Message]:
    """All live messages of a conversation, oldest first."""
    return [
        Message.from_row(row)
        for row in db.query(
            "SELECT * FROM messages WHERE conversation_id = ? AND deleted = 0"
            " ORDER BY created_at, rowid",
            [conversation_id],
        )
    ]


def recent_messages(
    db: Database, conversation_id: str, *, limit: int, exclude: tuple[str, ...] = ()
) -> list[Message]:
    """The newest `limit` live messages of a conversation, newest first."""
    marks = ",".join("?" for _ in exclude) or "''"
    return [
        Message.from_row(row)
        for row in db.query(
            "SELECT * FROM messages WHERE conversation_id = ? AND deleted = 0"
            f" AND id NOT IN ({marks}) ORDER BY created_at DESC, rowid DESC LIMIT ?",
            [conversation_id, *exclude, limit],
        )
    ]


def previous_day(db: Database, before_day: str) -> Conversation | None:
    """The latest day before `before_day` that has live messages."""
    rows = list(
        db.query(
            "SELECT c.* FROM conversations c WHERE c.day < ? AND EXISTS"
            " (SELECT 1 FROM messages m WHERE m.conversation_id = c.id"
            " AND m.deleted = 0) ORDER BY c.day DESC LIMIT 1",
            [before_day],
        )
    )
    return _conversation(rows[0]) if rows else None


def attachments_of(db: Database, message_id: str) -> list[Attachment]:
    return [
        Attachment(
            id=row["id"],
            message_id=row["message_id"],
            name=row["name"],
            mime=row["mime"],
            size=row["size"],
            sha256=row["sha256"],
            content=row["content"],
        )
        for row in db.query(
            "SELECT * FROM attachments WHERE message_id = ? ORDER BY rowid",
            [message_id],
        )
    ]


def recover_orphans(db: Database) -> int:
    """Mark replies left `streaming` by a process that died as `interrupted`.

    A streaming reply records its writer's pid; if that process is gone (killed,
    crashed, power loss) the partial text is kept and honestly marked. A reply
    that was streaming from the sync server (`metadata.job_id`) is marked
    without queueing it for push: the server's stored reply is the truth and
    must not be overwritten by this partial copy.
    """
    stale: list[tuple[str, bool]] = []
    for row in db.query("SELECT id, metadata FROM messages WHERE status = 'streaming'"):
        meta = json.loads(row["metadata"] or "{}")
        if not _alive(meta.get("pid"), meta.get("host")):
            stale.append((row["id"], bool(meta.get("job_id"))))
    for message_id, from_server in stale:
        with writing(db):
            if from_server:
                db.execute(QUIET_ON)
            update_message(
                db, message_id, status=Status.INTERRUPTED, metadata={"recovered": True}
            )
            if from_server:
                db.execute(QUIET_OFF)
    return len(stale)


QUIET_ON = (
    "INSERT INTO sync_state (key, value) VALUES ('applying', '1')"
    " ON CONFLICT(key) DO UPDATE SET value = excluded.value"
)
"""Inside a transaction: writes that follow are not queued for push (m004)."""
QUIET_OFF = "DELETE FROM sync_state WHERE key = 'applying'"


def _alive(pid: object, host: object) -> bool:
    if not isinstance(pid, int) or host != _hostname():
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _hostname() -> str:
    import socket

    return socket.gethostname()


def writer_identity() -> dict[str, Any]:
    """Metadata that lets `recover_orphans` tell a live writer from a dead one."""
    return {"pid": os.getpid(), "host": _hostname()}
