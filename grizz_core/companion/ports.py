"""The storage interface the core needs, implemented by the local store
(`grizz_tui.store.local.LocalChatStore`) and by the server's per-user store.

Methods are async so a networked store (PostgreSQL in the server) can
implement them without blocking its event loop; the local SQLite adapter
simply runs its short queries inline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from grizz_core.domain import Attachment, MemoryItem, Message, Role, Status


class ChatStore(Protocol):
    async def ensure_day(self, day: str, tz: str) -> str:
        """Create the day's conversation if needed; return its id."""
        ...

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
    ) -> Message: ...

    async def start_reply(
        self,
        *,
        reply_id: str,
        conversation_id: str,
        model: str,
        metadata: dict[str, Any],
    ) -> Message:
        """Insert the reply row as `streaming`, or reset it if it exists (a retry)."""
        ...

    async def update_message(
        self,
        message_id: str,
        *,
        content: str | None = None,
        status: Status | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None: ...

    async def get_message(self, message_id: str) -> Message | None: ...

    async def attachments_of(self, message_id: str) -> list[Attachment]: ...

    async def recent_messages(
        self, conversation_id: str, *, limit: int, exclude: Sequence[str] = ()
    ) -> list[Message]:
        """Newest first."""
        ...

    async def previous_day(self, before_day: str) -> tuple[str, list[Message]]:
        """(day, its messages newest first) of the last earlier day with messages."""
        ...

    async def relevant_memories(self, query: str, *, limit: int) -> list[MemoryItem]:
        """Notes matching `query` first, then the most recent others."""
        ...

    async def remember(self, content: str, *, title: str = "") -> MemoryItem: ...

    async def recall(self, query: str, *, limit: int = 8) -> list[MemoryItem]: ...

    async def forget(self, memory_id: str) -> MemoryItem | None: ...
