"""Export to JSON/Markdown and import from JSON. A JSON export round-trips.

Import is idempotent: rows are upserted by id; for memory notes the newer
`updated_at` wins (ties broken by id), so importing twice changes nothing.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from grizz_core.domain import MemoryItem, Message, Role, utc_now
from grizz_core.errors import UsageError
from grizz_tui.store import conversations as conv
from grizz_tui.store.db import Database, writing

PRIVATE_METADATA = ("host", "pid")
"""Message metadata that identifies this machine (`writer_identity`): only
`recover_orphans` needs it, so an export leaves it out."""
FORMAT = "grizz-export"
VERSION = 1


def export_data(db: Database, *, day: str | None = None) -> dict[str, Any]:
    """Everything (or one day) as a JSON-ready dict."""
    rows = db.query(
        "SELECT * FROM conversations"
        + (" WHERE day = ?" if day else "")
        + " ORDER BY day",
        [day] if day else [],
    )
    conversations = []
    for row in rows:
        messages = []
        for message in conv.messages_of(db, row["id"]):
            data = message.to_dict()
            data["metadata"] = {
                k: v for k, v in message.metadata.items() if k not in PRIVATE_METADATA
            }
            data["attachments"] = [
                {
                    "id": a.id,
                    "name": a.name,
                    "mime": a.mime,
                    "size": a.size,
                    "sha256": a.sha256,
                    "content_b64": base64.b64encode(a.content).decode(),
                }
                for a in conv.attachments_of(db, message.id)
            ]
            messages.append(data)
        conversations.append({**dict(row), "messages": messages})
    memory = (
        []
        if day
        else [
            MemoryItem.from_row(r).to_dict()
            for r in db.query("SELECT * FROM memory ORDER BY rowid")
        ]
    )
    return {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": utc_now(),
        "conversations": conversations,
        "memory": memory,
    }


def export_markdown(db: Database, *, day: str | None = None) -> str:
    """A readable journal: one `#` section per day."""
    out: list[str] = []
    for c in export_data(db, day=day)["conversations"]:
        if not c["messages"]:
            continue
        out.append(f"# {c['day']}\n")
        for m in c["messages"]:
            who = "You" if m["role"] == Role.USER else "Grizz"
            mark = "" if m["status"] == "complete" else f" _({m['status']})_"
            out.append(
                f"**{who}** · {m['created_at'][11:16]} UTC{mark}\n\n{m['content']}\n"
                + _markdown_extras(m)
            )
    return "\n".join(out)


def _markdown_extras(m: dict[str, Any]) -> str:
    """The attachments and error text of a message, as Markdown lines."""
    lines = [
        f"- 📎 {a['name']} ({a['mime']}, {a['size']:,} bytes)\n"
        for a in m.get("attachments", [])
    ]
    error = (m.get("metadata") or {}).get("error")
    if error:
        lines.append(f"> ⚠ {error}\n")
    return ("\n" + "".join(lines)) if lines else ""


def import_data(db: Database, data: Any) -> dict[str, int]:
    """Upsert an export; returns counts of rows added or updated.

    Raises:
        UsageError: `data` is not a Grizz export.
    """
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UsageError(
            "This file is not a Grizz JSON export (format 'grizz-export')."
        )
    if data.get("version") != VERSION:
        raise UsageError(f"Unsupported export version {data.get('version')!r}.")
    counts = {"conversations": 0, "messages": 0, "memory": 0}
    try:
        with writing(db):
            for c in data.get("conversations", []):
                _import_conversation(db, c, counts)
            for item in data.get("memory", []):
                counts["memory"] += _import_memory(db, item)
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(
            f"The export is damaged ({type(exc).__name__}: {exc}); "
            "nothing was imported."
        ) from None
    return counts


def _import_conversation(
    db: Database, c: dict[str, Any], counts: dict[str, int]
) -> None:
    existing = conv.get_conversation(db, c["day"])
    if existing is None:
        db.insert(
            "conversations",
            {k: c[k] for k in ("id", "day", "tz", "title", "created_at", "updated_at")},
        )
        counts["conversations"] += 1
    conv_id = existing.id if existing else c["id"]
    for m in c.get("messages", []):
        message = Message.from_row(
            {
                **m,
                "conversation_id": conv_id,
                "metadata": json.dumps(m.get("metadata") or {}),
            }
        )
        if conv.get_message(db, message.id) is not None:
            continue
        db.insert(
            "messages",
            {
                **message.to_dict(),
                "metadata": json.dumps(message.metadata),
                "deleted": int(message.deleted),
            },
        )
        for a in m.get("attachments", []):
            db.insert(
                "attachments",
                {
                    "id": a["id"],
                    "message_id": message.id,
                    "name": a["name"],
                    "mime": a["mime"],
                    "size": a["size"],
                    "sha256": a["sha256"],
                    "content": base64.b64decode(a["content_b64"]),
                    "created_at": message.created_at,
                },
                ignore=True,
            )
        counts["messages"] += 1


def _import_memory(db: Database, item: dict[str, Any]) -> int:
    note = MemoryItem.from_row(
        {**item, "properties": json.dumps(item.get("properties") or {})}
    )
    rows = list(db.query("SELECT updated_at, id FROM memory WHERE id = ?", [note.id]))
    if rows and (rows[0]["updated_at"], rows[0]["id"]) >= (note.updated_at, note.id):
        return 0
    db.insert(
        "memory",
        {
            **note.to_dict(),
            "properties": json.dumps(note.properties),
            "deleted": int(note.deleted),
        },
        upsert="id",
    )
    return 1
