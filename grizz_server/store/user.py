"""`UserStore`: one user's conversations, messages and memory on the server.

It implements the core's `ChatStore` protocol (so a worker runs the same
`ChatSession` as `grizz ask`) plus sync `push`/`pull`. Every statement filters
on `user_id`, and every write takes the user's next change number(s) in the
same transaction (see `backend.py`), one transaction per logical write.
Memory methods live in `memory.py` (`MemoryMixin`).

Must not import: the provider, websockets, redis.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from typing import Any

from grizz_core.domain import (
    Attachment,
    Message,
    Role,
    Status,
    day_conversation_id,
    utc_now,
)
from grizz_core.errors import StoreError, UsageError

from . import statements as q
from . import sync
from .backend import Discard, RejectedData, StoreBackend
from .memory import MemoryMixin, dumps
from .pull import changes_of, conversation_change
from .pull import pull as pull_changes

PREVIOUS_DAY_MESSAGES = 60
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7396 JSON merge patch (what SQLite's json_patch does locally)."""
    out = dict(target)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_patch(out[key], value)
        else:
            out[key] = value
    return out


class UserStore(MemoryMixin):
    """The `ChatStore` of one user, strictly scoped by `user_id`."""

    def __init__(self, backend: StoreBackend, user_id: str) -> None:
        self._b = backend
        self.user_id = user_id

    async def ensure_day(self, day: str, tz: str) -> str:
        await self.create_day(day, tz)
        return day_conversation_id(day)

    async def create_day(self, day: str, tz: str) -> dict[str, Any] | None:
        """Create the day's conversation if it is missing.

        Returns:
            The conversation as a pull change (`{"seq", "entity", "id",
            "data"}`) when this call created it, else None.
        """
        if not isinstance(day, str) or not _DAY.fullmatch(day):
            raise UsageError(f"'{day}' is not a day (YYYY-MM-DD).")
        conv_id = day_conversation_id(day)
        key = (self.user_id, day)
        if key in self._b.known_days:
            return None
        created: dict[str, Any] | None = None
        where = {"k_uid": self.user_id, "k_id": conv_id}
        if not await self._b.fetch(q.conversation_exists, where):
            now = utc_now()
            row = {
                "user_id": self.user_id,
                "id": conv_id,
                "day": day,
                "tz": tz,
                "title": "",
                "created_at": now,
                "updated_at": now,
                "deleted": 0,
            }
            async with self._b.write() as conn:
                row["seq"] = await self._b.take_seq(conn, self.user_id)
                inserted = await conn.run(q.insert_conversation(self._b.dialect), row)
                if inserted.first() is None:
                    raise Discard  # another writer created it first
                created = conversation_change(row)  # kept only if committed
        self._b.known_days.add(key)
        return created

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
        """Insert a message (and its attachments) in one transaction.

        Idempotent by id: adding the same message again returns the stored one.

        Raises:
            StoreError: unknown conversation, or the id is taken by a different
                message.
        """
        now = utc_now()
        row = {
            "user_id": self.user_id,
            "id": message_id or str(uuid.uuid4()),
            "conversation_id": conversation_id,
            "role": str(Role(role)),
            "content": content,
            "status": str(Status(status)),
            "model": model,
            "metadata": dumps(metadata or {}),
            "created_at": now,
            "updated_at": now,
            "deleted": 0,
            "has_attachments": int(bool(attachments)),
        }
        inserted = False
        try:
            async with self._b.write() as conn:
                row["seq"] = await self._b.take_seq(conn, self.user_id)
                result = await conn.run(q.insert_message(self._b.dialect), row)
                if result.first() is None:
                    raise Discard
                if attachments:
                    await conn.run_many(
                        q.insert_attachments,
                        [
                            {
                                "user_id": self.user_id,
                                "id": a.id,
                                "message_id": row["id"],
                                "name": a.name,
                                "mime": a.mime,
                                "size": a.size,
                                "sha256": a.sha256,
                                "content": a.content,
                                "created_at": now,
                                "position": i,
                            }
                            for i, a in enumerate(attachments)
                        ],
                    )
                inserted = True
        except RejectedData:
            raise StoreError(
                f"Cannot store message {row['id']}: conversation {conversation_id} "
                "does not exist for this user, or an attachment id is already used."
            ) from None
        if inserted:
            return Message.from_row(row)
        return await self._existing_message(row)

    async def _existing_message(self, row: dict[str, Any]) -> Message:
        # the row may be another writer's in this process's open write group
        # (a device re-sending at once): committed once that group is
        await self._b.settle()
        existing = await self.get_message(row["id"])
        if existing is None or (
            existing.conversation_id,
            existing.role,
            existing.content,
        ) != (row["conversation_id"], row["role"], row["content"]):
            raise StoreError(
                f"Message id {row['id']} is already used by another message."
            )
        return existing

    async def start_reply(
        self,
        *,
        reply_id: str,
        conversation_id: str,
        model: str,
        metadata: dict[str, Any],
    ) -> Message:
        """Insert the reply row as `streaming`, or reset it if it exists (a retry).

        Raises:
            StoreError: the id belongs to a user message or another conversation,
                or the conversation is unknown.
        """
        return await self.save_reply(
            reply_id=reply_id,
            conversation_id=conversation_id,
            model=model,
            content="",
            status=Status.STREAMING,
            metadata=metadata,
        )

    async def save_reply(
        self,
        *,
        reply_id: str,
        conversation_id: str,
        model: str,
        content: str,
        status: Status,
        metadata: dict[str, Any],
    ) -> Message:
        """Write a whole reply row in one transaction: insert it, or overwrite
        the same reply (same id, role and conversation) if it exists.

        Raises:
            StoreError: the id belongs to a user message or another conversation,
                or the conversation is unknown.
        """
        now = utc_now()
        row = {
            "user_id": self.user_id,
            "id": reply_id,
            "conversation_id": conversation_id,
            "role": "assistant",
            "content": content,
            "status": str(Status(status)),
            "model": model,
            "metadata": dumps(metadata),
            "created_at": now,
            "updated_at": now,
            "deleted": 0,
            "has_attachments": 0,
        }
        try:
            async with self._b.write() as conn:
                row["seq"] = await self._b.take_seq(conn, self.user_id)
                stored = (await conn.run(q.start_reply(self._b.dialect), row)).first()
                if stored is None:
                    raise StoreError(
                        f"Reply id {reply_id} is already used by another message."
                    )
        except RejectedData:
            raise StoreError(
                f"Cannot store reply {reply_id}: conversation {conversation_id} "
                "does not exist for this user."
            ) from None
        return q.message_from_tuple(stored)

    async def update_message(
        self,
        message_id: str,
        *,
        content: str | None = None,
        status: Status | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Change a message's content, status and/or metadata (merge-patched)."""
        where = {"k_uid": self.user_id, "k_id": message_id}
        values: dict[str, Any] = {
            **where,
            "v_content": content,
            "v_status": None if status is None else str(Status(status)),
            "v_metadata": None,
            "v_updated_at": utc_now(),
        }
        async with self._b.write() as conn:
            values["v_seq"] = await self._b.take_seq(conn, self.user_id)
            if metadata is not None:
                old = (await conn.run(q.message_metadata, where)).scalar()
                if old is None:
                    raise Discard
                values["v_metadata"] = dumps(merge_patch(_loads(old), metadata))
            if (await conn.run(q.update_message, values)).rowcount == 0:
                raise Discard

    async def get_message(self, message_id: str) -> Message | None:
        rows = await self._b.fetch(
            q.get_message, {"k_uid": self.user_id, "k_id": message_id}
        )
        return self._b.rows.messages(self.user_id, rows)[0] if rows else None

    async def attachments_of(self, message_id: str) -> list[Attachment]:
        rows = await self._b.fetch(
            q.attachments_of, {"k_uid": self.user_id, "k_message": message_id}
        )
        return [q.attachment_from_tuple(r) for r in rows]

    async def recent_messages(
        self, conversation_id: str, *, limit: int, exclude: Sequence[str] = ()
    ) -> list[Message]:
        """The newest `limit` live messages of a conversation, newest first.

        Served from this process's window of the conversation, which reads
        only the rows written since its last read (`recent.py`).
        """
        return await self._b.windows.newest(
            self._b.fetch,
            self._b.rows,
            self.user_id,
            conversation_id,
            limit,
            set(exclude),
        )

    async def previous_day(self, before_day: str) -> tuple[str, list[Message]]:
        """(day, its messages newest first) of the last earlier day with messages."""
        params = {"k_uid": self.user_id, "k_day": before_day}
        rows = await self._b.fetch(q.previous_day, params)
        if not rows:
            return "", []
        conv_id, day = rows[0][0], rows[0][1]
        return day, await self.recent_messages(conv_id, limit=PREVIOUS_DAY_MESSAGES)

    # -- sync ---------------------------------------------------------------

    async def push(
        self, changes: list[dict[str, Any]], *, max_skew_s: float = sync.MAX_SKEW_S
    ) -> list[dict[str, Any]]:
        """Apply a device's changes; one result per change (see `sync.push`).

        `max_skew_s`: how far ahead of this server's clock an `updated_at`
        may be; later ones are stored as now plus that.
        """
        return await sync.push(self._b, self.user_id, changes, max_skew_s=max_skew_s)

    async def pull(
        self, after: int, limit: int = 500, *, max_bytes: int | None = None
    ) -> tuple[list[dict[str, Any]], int, bool]:
        """Changes after cursor `after`: (changes, next cursor, has_more).

        `max_bytes` ends the page early at about that many bytes of content.
        """
        return await pull_changes(self._b, self.user_id, after, limit, max_bytes)

    async def changes_of(
        self, rows: Sequence[tuple[str, str]], *, max_bytes: int | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """(entity, id) rows as pull changes, and the current change number.

        None of them when they would take more than `max_bytes` (see
        `pull.changes_of`).
        """
        return await changes_of(self._b, self.user_id, rows, max_bytes)

    async def current_seq(self) -> int:
        """The user's latest change number (0 before any write)."""
        rows = await self._b.fetch(q.current_seq, {"k_uid": self.user_id})
        return int(rows[0][0]) if rows else 0


def _loads(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
