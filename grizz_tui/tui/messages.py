"""App-level facts the chat screen posts (past tense), for the app and tests.

Must not import: the store or the core at module level.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from grizz_core.domain import Message as StoredMessage


class DayShown(Message):
    """A day's conversation is on screen."""

    def __init__(self, day: str, count: int) -> None:
        super().__init__()
        self.day = day
        self.count = count


class ReplyEnded(Message):
    """A reply stopped streaming: complete, interrupted or failed."""

    def __init__(self, message: StoredMessage, error: str = "") -> None:
        super().__init__()
        self.message = message
        self.error = error


class ModelLoading(Message):
    """The local model's load progressed (posted from its worker thread).

    `text` is what the typing indicator shows ("Loading the local model… 40%");
    '' when the load is over (loaded or failed).
    """

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
