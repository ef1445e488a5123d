"""`LocalChatStore`: the core's `ChatStore` interface over the local SQLite file.

Queries are short and run inline (SQLite in WAL mode answers in well under a
millisecond for these), so the async methods never hop threads.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from grizz_core.domain import (
    Attachment,
    MemoryItem,
    Message,
    Role,
    Status,
    utc_now,
)
from grizz_tui.store import conversations as conv
from grizz_tui.store import memory as mem
from grizz_tui.store.db import Database, writing


class LocalChatStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def ensure_day(self, day: str, tz: str) -> str:
        return conv.ensure_conversation(self.db, day, tz).id

    async def add_message(
        self,
        *,
        conversation_id: str,
        role: Role,
        content: str,
        status: Status = Status.COMPLETE,
        model: str = "",
        metadata: dict[str, Any] | None = None,
        message_id: str | None = None,
        attachments: Sequence[Attachment] = (),
    ) -> Message:
        return conv.add_message(
            self.db,
            conversation_id=conversation_id,
            role=role,
            content=content,
            status=status,
            model=model,
            metadata=metadata,
            message_id=message_id,
            attachments=list(attachments),
        )

    async def start_reply(
        self,
        *,
        reply_id: str,
        conversation_id: str,
        model: str,
        metadata: dict[str, Any],
    ) -> Message:
        meta = {**metadata, **conv.writer_identity()}
        now = utc_now()
        with writing(self.db):
            self.db.execute(
                "INSERT INTO messages (id, conversation_id, role, content, status,"
                " model, metadata, created_at, updated_at)"
                " VALUES (?, ?, 'assistant', '', 'streaming', ?, ?, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET content = '',"
                " status = 'streaming', model = excluded.model,"
                " metadata = excluded.metadata, updated_at = excluded.updated_at",
                [reply_id, conversation_id, model, json.dumps(meta), now, now],
            )
        found = conv.get_message(self.db, reply_id)
        assert found is not None
        return found

    async def update_message(
        self,
        message_id: str,
        *,
        content: str | None = None,
        status: Status | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        conv.update_message(
            self.db, message_id, content=content, status=status, metadata=metadata
        )

    async def get_message(self, message_id: str) -> Message | None:
        return conv.get_message(self.db, message_id)

    async def attachments_of(self, message_id: str) -> list[Attachment]:
        return conv.attachments_of(self.db, message_id)

    async def recent_messages(
        self, conversation_id: str, *, limit: int, exclude: Sequence[str] = ()
    ) -> list[Message]:
        return conv.recent_messages(
            self.db, conversation_id, limit=limit, exclude=tuple(exclude)
        )

    async def previous_day(self, before_day: str) -> tuple[str, list[Message]]:
        found = conv.previous_day(self.db, before_day)
        if found is None:
            return "", []
        return found.day, conv.recent_messages(self.db, found.id, limit=60)

    async def relevant_memories(self, query: str, *, limit: int) -> list[MemoryItem]:
        matched = mem.search_memory(self.db, query, limit=limit, any_word=True)
        seen = {m.id for m in matched}
        recent = [m for m in mem.list_memory(self.db, limit=limit) if m.id not in seen]
        return (matched + recent)[:limit]

    async def remember(self, content: str, *, title: str = "") -> MemoryItem:
        return mem.add_memory(
            self.db, content, title=title, properties={"source": "grizz"}
        )

    async def recall(self, query: str, *, limit: int = 8) -> list[MemoryItem]:
        return mem.search_memory(self.db, query, limit=limit, any_word=True)

    async def forget(self, memory_id: str) -> MemoryItem | None:
        return mem.delete_memory(self.db, memory_id)
