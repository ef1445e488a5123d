"""`UserStore`: one user's conversations, messages and memory on the server.

It implements the core's `ChatStore` protocol (so a worker runs the same
`ChatSession` as `grizz ask`) plus sync `push`/`pull`. Every statement filters
on `user_id`, and every write takes the user's next change number(s) in the
same transaction (see `backend.py`), one transaction per logical write.

Must not import: the provider, websockets, redis.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, update

from grizz_tui.errors import StoreError, UsageError
from grizz_tui.store.conversations import day_conversation_id
from grizz_tui.store.models import (
    Attachment,
    MemoryItem,
    Message,
    Role,
    Status,
    utc_now,
)
from grizz_tui.store.search import STOP_WORDS

from . import sync
from .backend import Backend, Discard, RejectedData
from .schema import attachments as attachments_table
from .schema import conversations, memory, messages, users

SEARCH_WORDS = 8
SEARCH_CANDIDATES = 200
PREVIOUS_DAY_MESSAGES = 60
_WORD = re.compile(r"\w+", re.UNICODE)
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


def _dumps(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class UserStore:
    """The `ChatStore` of one user, strictly scoped by `user_id`."""

    def __init__(self, backend: Backend, user_id: str) -> None:
        self._b = backend
        self.user_id = user_id

    # -- conversations and messages --------------------------------------

    async def ensure_day(self, day: str, tz: str) -> str:
        if not isinstance(day, str) or not _DAY.fullmatch(day):
            raise UsageError(f"'{day}' is not a day (YYYY-MM-DD).")
        conv_id = day_conversation_id(day)
        key = (self.user_id, day)
        if key in self._b.known_days:
            return conv_id
        c = conversations.c
        async with self._b.read() as conn:
            found = (
                await conn.execute(
                    select(c.id).where(c.user_id == self.user_id, c.id == conv_id)
                )
            ).first()
        if found is None:
            now = utc_now()
            async with self._b.write() as conn:
                seq = await self._b.take_seq(conn, self.user_id)
                inserted = await conn.execute(
                    self._b.insert(conversations)
                    .values(
                        user_id=self.user_id,
                        id=conv_id,
                        day=day,
                        tz=tz,
                        title="",
                        created_at=now,
                        updated_at=now,
                        deleted=0,
                        seq=seq,
                    )
                    .on_conflict_do_nothing()
                    .returning(c.id)
                )
                if inserted.first() is None:
                    raise Discard  # another writer created it first
        self._b.known_days.add(key)
        return conv_id

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
            StoreError: unknown conversation, or the id is taken by a different message.
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
            "metadata": _dumps(metadata or {}),
            "created_at": now,
            "updated_at": now,
            "deleted": 0,
            "has_attachments": int(bool(attachments)),
        }
        inserted = False
        try:
            async with self._b.write() as conn:
                row["seq"] = await self._b.take_seq(conn, self.user_id)
                result = await conn.execute(
                    self._b.insert(messages)
                    .values(row)
                    .on_conflict_do_nothing()
                    .returning(messages.c.id)
                )
                if result.first() is None:
                    raise Discard
                if attachments:
                    await conn.execute(
                        attachments_table.insert(),
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
        existing = await self.get_message(row["id"])
        if (
            existing is None
            or existing.conversation_id != row["conversation_id"]
            or existing.role != row["role"]
            or existing.content != row["content"]
        ):
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
            StoreError: the id belongs to a user message, or the conversation is
                unknown.
        """
        now = utc_now()
        row = {
            "user_id": self.user_id,
            "id": reply_id,
            "conversation_id": conversation_id,
            "role": "assistant",
            "content": "",
            "status": "streaming",
            "model": model,
            "metadata": _dumps(metadata),
            "created_at": now,
            "updated_at": now,
            "deleted": 0,
            "has_attachments": 0,
        }
        m = messages.c
        try:
            async with self._b.write() as conn:
                row["seq"] = await self._b.take_seq(conn, self.user_id)
                stmt = self._b.insert(messages).values(row)
                stmt = stmt.on_conflict_do_update(
                    index_elements=[m.user_id, m.id],
                    set_={
                        "content": "",
                        "status": "streaming",
                        "model": model,
                        "metadata": row["metadata"],
                        "updated_at": now,
                        "seq": row["seq"],
                    },
                    where=and_(
                        m.role == "assistant", m.conversation_id == conversation_id
                    ),
                ).returning(*messages.c)
                stored = (await conn.execute(stmt)).first()
                if stored is None:
                    raise StoreError(
                        f"Reply id {reply_id} is already used by another message."
                    )
        except RejectedData:
            raise StoreError(
                f"Cannot start reply {reply_id}: conversation {conversation_id} "
                "does not exist for this user."
            ) from None
        return Message.from_row(dict(stored._mapping))

    async def update_message(
        self,
        message_id: str,
        *,
        content: str | None = None,
        status: Status | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Change a message's content, status and/or metadata (merge-patched)."""
        m = messages.c
        values: dict[str, Any] = {"updated_at": utc_now()}
        if content is not None:
            values["content"] = content
        if status is not None:
            values["status"] = str(Status(status))
        where = (m.user_id == self.user_id, m.id == message_id)
        async with self._b.write() as conn:
            values["seq"] = await self._b.take_seq(conn, self.user_id)
            if metadata is not None:
                old = (await conn.execute(select(m.metadata).where(*where))).scalar()
                if old is None:
                    raise Discard
                values["metadata"] = _dumps(merge_patch(_loads(old), metadata))
            result = await conn.execute(update(messages).where(*where).values(values))
            if result.rowcount == 0:
                raise Discard

    async def get_message(self, message_id: str) -> Message | None:
        m = messages.c
        async with self._b.read() as conn:
            row = (
                await conn.execute(
                    select(messages).where(
                        m.user_id == self.user_id, m.id == message_id
                    )
                )
            ).first()
        return Message.from_row(dict(row._mapping)) if row else None

    async def attachments_of(self, message_id: str) -> list[Attachment]:
        a = attachments_table.c
        async with self._b.read() as conn:
            rows = await conn.execute(
                select(attachments_table)
                .where(a.user_id == self.user_id, a.message_id == message_id)
                .order_by(a.position, a.id)
            )
            return [
                Attachment(
                    id=r.id,
                    message_id=r.message_id,
                    name=r.name,
                    mime=r.mime,
                    size=r.size,
                    sha256=r.sha256,
                    content=bytes(r.content),
                )
                for r in rows
            ]

    async def recent_messages(
        self, conversation_id: str, *, limit: int, exclude: Sequence[str] = ()
    ) -> list[Message]:
        """The newest `limit` live messages of a conversation, newest first."""
        m = messages.c
        query = (
            select(messages)
            .where(
                m.user_id == self.user_id,
                m.conversation_id == conversation_id,
                m.deleted == 0,
            )
            .order_by(m.created_at.desc(), m.id.desc())
            .limit(limit)
        )
        if exclude:
            query = query.where(m.id.not_in(list(exclude)))
        async with self._b.read() as conn:
            rows = await conn.execute(query)
            return [Message.from_row(dict(r._mapping)) for r in rows]

    async def previous_day(self, before_day: str) -> tuple[str, list[Message]]:
        """(day, its messages newest first) of the last earlier day with messages."""
        c, m = conversations.c, messages.c
        live = exists().where(
            m.user_id == self.user_id, m.conversation_id == c.id, m.deleted == 0
        )
        async with self._b.read() as conn:
            row = (
                await conn.execute(
                    select(c.id, c.day)
                    .where(c.user_id == self.user_id, c.day < before_day, live)
                    .order_by(c.day.desc())
                    .limit(1)
                )
            ).first()
        if row is None:
            return "", []
        return row.day, await self.recent_messages(row.id, limit=PREVIOUS_DAY_MESSAGES)

    # -- memory -------------------------------------------------------------

    async def relevant_memories(self, query: str, *, limit: int) -> list[MemoryItem]:
        """Notes matching `query` first, then the most recent others."""
        matched = await self.recall(query, limit=limit)
        seen = {item.id for item in matched}
        recent = [
            item for item in await self.list_memory(limit=limit) if item.id not in seen
        ]
        return (matched + recent)[:limit]

    async def list_memory(self, *, limit: int | None = None) -> list[MemoryItem]:
        """Live notes, newest first."""
        n = memory.c
        query = (
            select(memory)
            .where(n.user_id == self.user_id, n.deleted == 0)
            .order_by(n.updated_at.desc(), n.id.desc())
            .limit(limit)
        )
        async with self._b.read() as conn:
            return [
                MemoryItem.from_row(dict(r._mapping)) for r in await conn.execute(query)
            ]

    async def remember(self, content: str, *, title: str = "") -> MemoryItem:
        now = utc_now()
        row = {
            "user_id": self.user_id,
            "id": str(uuid.uuid4()),
            "kind": "note",
            "title": title.strip(),
            "content": content.strip(),
            "properties": _dumps({"source": "grizz"}),
            "file": "",
            "mime": "",
            "deleted": 0,
            "created_at": now,
            "updated_at": now,
        }
        async with self._b.write() as conn:
            row["seq"] = await self._b.take_seq(conn, self.user_id)
            await conn.execute(memory.insert().values(row))
        return MemoryItem.from_row(row)

    async def recall(self, query: str, *, limit: int = 8) -> list[MemoryItem]:
        """Live notes containing any of the query's words, most words matched first.

        A portable substring search (the same SQL on SQLite and PostgreSQL);
        one user's notes number in the hundreds, so no index is needed.
        """
        words = _search_words(query)
        if not words:
            return []
        n = memory.c
        haystack = func.lower(n.title + " " + n.content)
        query_ = (
            select(memory)
            .where(
                n.user_id == self.user_id,
                n.deleted == 0,
                or_(*(haystack.contains(w, autoescape=True) for w in words)),
            )
            .order_by(n.updated_at.desc(), n.id.desc())
            .limit(SEARCH_CANDIDATES)
        )
        async with self._b.read() as conn:
            items = [
                MemoryItem.from_row(dict(r._mapping))
                for r in await conn.execute(query_)
            ]

        def score(item: MemoryItem) -> int:
            text = f"{item.title} {item.content}".lower()
            return sum(1 for w in words if w in text)

        return sorted(items, key=score, reverse=True)[
            :limit
        ]  # stable: newest first on ties

    async def forget(self, memory_id: str) -> MemoryItem | None:
        """Tombstone a live note by id or unique id prefix (≥ 4 characters)."""
        ref = (memory_id or "").strip()
        if len(ref) < 4:
            return None
        n = memory.c
        found: MemoryItem | None = None
        async with self._b.write() as conn:
            rows = (
                await conn.execute(
                    select(memory)
                    .where(
                        n.user_id == self.user_id,
                        n.deleted == 0,
                        or_(n.id == ref, n.id.startswith(ref, autoescape=True)),
                    )
                    .limit(2)
                )
            ).all()
            exact = [r for r in rows if r.id == ref]
            if exact:
                rows = exact
            if len(rows) != 1:
                raise Discard
            found = MemoryItem.from_row(dict(rows[0]._mapping))
            seq = await self._b.take_seq(conn, self.user_id)
            await conn.execute(
                update(memory)
                .where(n.user_id == self.user_id, n.id == found.id)
                .values(deleted=1, updated_at=utc_now(), seq=seq)
            )
        return found

    # -- sync ---------------------------------------------------------------

    async def push(self, changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Apply a device's changes; one result per change (see `sync.push`)."""
        return await sync.push(self._b, self.user_id, changes)

    async def pull(
        self, after: int, limit: int = 500
    ) -> tuple[list[dict[str, Any]], int, bool]:
        """Changes after cursor `after`: (changes, next cursor, has_more)."""
        return await sync.pull(self._b, self.user_id, after, limit)

    async def current_seq(self) -> int:
        """The user's latest change number (0 before any write)."""
        async with self._b.read() as conn:
            value = (
                await conn.execute(
                    select(users.c.seq).where(users.c.id == self.user_id)
                )
            ).scalar()
        return int(value or 0)


def _search_words(query: str) -> list[str]:
    words: list[str] = []
    for word in _WORD.findall(query or ""):
        lowered = word.lower()
        if len(lowered) > 1 and lowered not in STOP_WORDS and lowered not in words:
            words.append(lowered)
    return words[:SEARCH_WORDS]


def _loads(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
