"""`Windows`: the newest live messages of each conversation a process reads,
kept up to date by reading only what changed since.

Every reply reads its day's newest messages (up to 400) and the previous
day's (60) to build the model's context. Read whole each time, that is a
few hundred index rows and cache look-ups per reply, growing with the length
of the day. A window holds the result of one whole read and, from then on,
asks only for the user's rows written since: every write to a row gives it
the user's next change number (`seq`), and one user's writes commit in
`seq` order on both back ends (`backend.py`), so "seq above the highest one
seen" finds every change, whichever process or machine made it.

Correctness rests on three rules:

- The watermark of a whole read is the user's `seq` read *before* the rows:
  anything committed after that has a higher number and comes in the next
  catch-up (re-applying a row already seen is harmless).
- A window holds the newest `size` live messages exactly (or all of them,
  `complete`). A change that ranks below a full window is dropped; when
  deletions leave a window short of `size` and older rows exist, it is read
  whole again.
- One update per window at a time (`asyncio.Lock`): on PostgreSQL reads
  suspend, and an older read applied after a newer one would bring back a
  stale row.

Windows are bounded by the number of messages they hold in all
(`max_messages`); the least recently used go first.

Must not import: the core, the provider, websockets, redis.
"""

from __future__ import annotations

import asyncio
import bisect
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from grizz_core.domain import Message

from . import statements as q

CATCH_UP_LIMIT = 64
"""Past this many changed rows since a window's watermark, read it whole."""

Fetch = Callable[[Any, dict[str, Any]], Awaitable[list[Any]]]


@dataclass
class _Window:
    user_id: str
    conversation_id: str
    size: int
    watermark: int = -1
    complete: bool = False
    keys: list[tuple[str, str]] = field(default_factory=list)
    """(created_at, id) of each message, oldest first (bisect order)."""
    items: list[Message] = field(default_factory=list)
    """The messages, in the order of `keys`."""
    ids: dict[str, tuple[str, str]] = field(default_factory=dict)
    """id -> key of every message held."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def newest(self, limit: int, skip: set[str]) -> list[Message]:
        out: list[Message] = []
        for message in reversed(self.items):
            if message.id in skip:
                continue
            out.append(message)
            if len(out) == limit:
                break
        return out

    def fill(self, messages: Sequence[Message], watermark: int) -> None:
        ordered = sorted(messages, key=_key)
        self.keys = [_key(m) for m in ordered]
        self.items = ordered
        self.ids = {m.id: k for m, k in zip(ordered, self.keys, strict=True)}
        self.complete = len(ordered) < self.size
        self.watermark = watermark

    def apply(self, message: Message) -> None:
        """Put one changed row in place (or take it out, if deleted)."""
        held = self.ids.pop(message.id, None)
        if held is not None:
            at = bisect.bisect_left(self.keys, held)
            del self.items[at], self.keys[at]
        if message.deleted:
            return
        key = _key(message)
        at = bisect.bisect(self.keys, key)
        self.keys.insert(at, key)
        self.items.insert(at, message)
        self.ids[message.id] = key
        if len(self.items) > self.size:  # the oldest is no longer in the newest
            del self.ids[self.items[0].id], self.items[0], self.keys[0]
            self.complete = False

    @property
    def short(self) -> bool:
        """Deletions left fewer than `size` while older messages exist."""
        return not self.complete and len(self.items) < self.size


def _key(message: Message) -> tuple[str, str]:
    return (message.created_at, message.id)


class Windows:
    """Every conversation window of one process (see the module docstring)."""

    def __init__(self, max_messages: int = 50_000) -> None:
        self.max_messages = max_messages
        self._windows: OrderedDict[tuple[str, str], _Window] = OrderedDict()
        self._held = 0
        """Messages held by all windows (list slots; the records themselves
        are mostly shared with the `RowCache`)."""

    async def newest(
        self,
        fetch: Fetch,
        rows: q.RowCache,
        user_id: str,
        conversation_id: str,
        limit: int,
        skip: set[str],
    ) -> list[Message]:
        """The newest `limit` live messages of the conversation not in `skip`,
        newest first."""
        want = limit + len(skip)
        key = (user_id, conversation_id)
        window = self._windows.get(key)
        if window is None or window.size < want:
            if window is not None:
                self._held -= len(window.items)
            size = max(want, window.size if window else 0)
            window = _Window(user_id, conversation_id, size)
            self._windows[key] = window
        self._windows.move_to_end(key)
        async with window.lock:
            before = len(window.items)
            if window.watermark < 0 or not await _catch_up(fetch, rows, window):
                await _read_whole(fetch, rows, window)
            if self._windows.get(key) is window:  # not evicted meanwhile
                self._held += len(window.items) - before
                self._bound()
            return window.newest(limit, skip)

    def _bound(self) -> None:
        """Evict the least recently used windows past `max_messages`."""
        while self._held > self.max_messages and len(self._windows) > 1:
            _, oldest = self._windows.popitem(last=False)
            self._held -= len(oldest.items)


async def _catch_up(fetch: Fetch, rows: q.RowCache, window: _Window) -> bool:
    """Apply the user's changes since the watermark; False when the window
    must be read whole instead."""
    changed = await fetch(
        q.messages_changed_since,
        {
            "k_uid": window.user_id,
            "k_after": window.watermark,
            "k_limit": CATCH_UP_LIMIT,
        },
    )
    if len(changed) >= CATCH_UP_LIMIT:
        return False
    seq_at = q.MESSAGE_SEQ
    for message, row in zip(
        rows.messages(window.user_id, changed), changed, strict=True
    ):
        if message.conversation_id == window.conversation_id:
            window.apply(message)
        window.watermark = max(window.watermark, int(row[seq_at]))
    return not window.short


async def _read_whole(fetch: Fetch, rows: q.RowCache, window: _Window) -> None:
    seq = await fetch(q.current_seq, {"k_uid": window.user_id})
    watermark = int(seq[0][0]) if seq else 0
    found = await fetch(
        q.recent_messages,
        {
            "k_uid": window.user_id,
            "k_conversation": window.conversation_id,
            "k_limit": window.size,
        },
    )
    window.fill(rows.messages(window.user_id, found), watermark)
