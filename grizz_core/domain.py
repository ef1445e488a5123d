"""The domain both apps share: the frozen dataclasses stores return, their
enums, timestamps, and the deterministic id of a day's conversation.

Must not import: anything outside the standard library.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Role(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"


class Status(StrEnum):
    """Lifecycle of a message. A reply is `streaming` only while being written."""

    STREAMING = "streaming"
    COMPLETE = "complete"
    INTERRUPTED = "interrupted"
    ERROR = "error"


DAY_NAMESPACE = uuid.UUID("6f1c2f3e-9b1d-4c55-8a39-6b0f4a7d2a11")
"""The uuid5 namespace of day conversation ids (docs/protocol.md)."""


def day_conversation_id(day: str) -> str:
    """The conversation id of a local day (`YYYY-MM-DD`): uuid5 of the day.

    Every device and the server derive the same id, so two devices that start
    the same day offline create the same conversation.
    """
    return str(uuid.uuid5(DAY_NAMESPACE, day))


def utc_now() -> str:
    """Current time as an ISO-8601 UTC string with microseconds (sortable)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def loads(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Conversation:
    id: str
    day: str
    """Local calendar day, `YYYY-MM-DD`, in the user's time zone."""
    tz: str
    title: str
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class Message:
    id: str
    conversation_id: str
    role: Role
    content: str
    status: Status
    created_at: str
    updated_at: str
    model: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    deleted: bool = False

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Message:
        return cls(
            id=row["id"],
            conversation_id=row["conversation_id"],
            role=Role(row["role"]),
            content=row["content"] or "",
            status=Status(row["status"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            model=row.get("model") or "",
            metadata=loads(row.get("metadata")),
            deleted=bool(row.get("deleted")),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "conversation_id": self.conversation_id,
            "role": str(self.role),
            "content": self.content,
            "status": str(self.status),
            "model": self.model,
            "metadata": self.metadata,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "deleted": self.deleted,
        }


@dataclass(frozen=True)
class MemoryItem:
    id: str
    kind: str
    title: str
    content: str
    created_at: str
    updated_at: str
    properties: dict[str, Any] = field(default_factory=dict)
    file: str = ""
    mime: str = ""
    deleted: bool = False

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> MemoryItem:
        return cls(
            id=row["id"],
            kind=row["kind"] or "note",
            title=row["title"] or "",
            content=row["content"] or "",
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            properties=loads(row.get("properties")),
            file=row.get("file") or "",
            mime=row.get("mime") or "",
            deleted=bool(row.get("deleted")),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "title": self.title,
            "content": self.content,
            "properties": self.properties,
            "file": self.file,
            "mime": self.mime,
            "deleted": self.deleted,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class Attachment:
    id: str
    message_id: str
    name: str
    mime: str
    size: int
    sha256: str
    content: bytes = field(repr=False)


@dataclass(frozen=True)
class SearchHit:
    """One search result: a message of some day, or a memory note."""

    kind: str
    """`message` or `memory`."""
    id: str
    snippet: str
    day: str = ""
    role: str = ""
    title: str = ""
    created_at: str = ""


@dataclass(frozen=True)
class DaySummary:
    day: str
    conversation_id: str
    messages: int
    first_line: str
