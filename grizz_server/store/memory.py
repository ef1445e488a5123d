"""Grizz's notes about one user on the server: remember, recall, forget.

Recall is a portable substring search (the same SQL on SQLite and
PostgreSQL), ranked by how many of the query's words a note contains, newest
first among equals. One user's notes number in the hundreds, so no full-text
index is needed; SQLite's `lower()` folds ASCII only, PostgreSQL's all letters.

Must not import: the provider, websockets, redis.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from grizz_core.domain import MemoryItem, utc_now
from grizz_core.words import STOP_WORDS

from . import statements as q
from .backend import Discard, StoreBackend

SEARCH_CANDIDATES = 200
_WORD = re.compile(r"\w+", re.UNICODE)


def dumps(value: dict[str, Any]) -> str:
    """Canonical JSON text (sorted keys), so equal objects compare equal as text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def search_words(query: str) -> list[str]:
    """The distinct lower-cased words of `query` worth searching for."""
    words: list[str] = []
    for word in _WORD.findall(query or ""):
        lowered = word.lower()
        if len(lowered) > 1 and lowered not in STOP_WORDS and lowered not in words:
            words.append(lowered)
    return words[: q.MAX_SEARCH_WORDS]


class MemoryMixin:
    """The memory half of `UserStore`."""

    _b: StoreBackend
    user_id: str

    async def relevant_memories(self, query: str, *, limit: int) -> list[MemoryItem]:
        """Notes matching `query` first, then the most recent others."""
        recent = await self.list_memory(limit=limit)
        if not recent:
            return []  # no notes at all: nothing can match (one query per reply)
        matched = await self.recall(query, limit=limit)
        seen = {item.id for item in matched}
        return (matched + [item for item in recent if item.id not in seen])[:limit]

    async def list_memory(self, *, limit: int | None = None) -> list[MemoryItem]:
        """Live notes, newest first."""
        params = {"k_uid": self.user_id, "k_limit": limit or q.NO_LIMIT}
        rows = await self._b.fetch(q.list_memory, params)
        return self._b.rows.memory(self.user_id, rows)

    async def remember(self, content: str, *, title: str = "") -> MemoryItem:
        now = utc_now()
        row = {
            "user_id": self.user_id,
            "id": str(uuid.uuid4()),
            "kind": "note",
            "title": title.strip(),
            "content": content.strip(),
            "properties": dumps({"source": "grizz"}),
            "file": "",
            "mime": "",
            "deleted": 0,
            "created_at": now,
            "updated_at": now,
        }
        async with self._b.write() as conn:
            row["seq"] = await self._b.take_seq(conn, self.user_id)
            await conn.run(q.insert_memory, row)
        return MemoryItem.from_row(row)

    async def recall(self, query: str, *, limit: int = 8) -> list[MemoryItem]:
        """Live notes containing any of the query's words, most words matched first."""
        words = search_words(query)
        if not words:
            return []
        params: dict[str, Any] = {"k_uid": self.user_id, "k_limit": SEARCH_CANDIDATES}
        params.update({f"k_w{i}": q.like_pattern(w) for i, w in enumerate(words)})
        rows = await self._b.fetch(q.search_memory(len(words)), params)
        items = self._b.rows.memory(self.user_id, rows)

        def score(item: MemoryItem) -> int:
            text = f"{item.title} {item.content}".lower()
            return sum(1 for w in words if w in text)

        return sorted(items, key=score, reverse=True)[:limit]  # stable: newest first

    async def forget(self, memory_id: str) -> MemoryItem | None:
        """Tombstone a live note by id or unique id prefix (≥ 4 characters)."""
        ref = (memory_id or "").strip()
        if len(ref) < 4:
            return None
        params = {
            "k_uid": self.user_id,
            "k_id": ref,
            "k_prefix": q.like_pattern(ref, prefix_only=True),
        }
        found: MemoryItem | None = None
        async with self._b.write() as conn:
            rows = (await conn.run(q.find_memory, params)).rows
            items = [q.memory_from_tuple(r) for r in rows]
            items = [i for i in items if i.id == ref] or items
            if len(items) != 1:
                raise Discard
            found = items[0]
            await conn.run(
                q.tombstone_memory,
                {
                    "k_uid": self.user_id,
                    "k_id": found.id,
                    "v_updated_at": utc_now(),
                    "v_seq": await self._b.take_seq(conn, self.user_id),
                },
            )
        return found
