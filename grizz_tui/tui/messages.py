"""App-level facts the chat screen posts (past tense), for the app and tests,
and the actions a message on screen asks for.

Must not import: the store or the core at module level.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from grizz_core.domain import Message as StoredMessage
    from grizz_tui.tui.widgets.message_view import MessageView


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


class MessageAction(Message):
    """The user asked for something to be done to one message on screen.

    Posted by `MessageView` (its keys, or the palette through it). Declared
    here rather than nested in `MessageView`, so that the chat screen can
    handle them without importing Textual's Markdown before the first frame.
    """

    def __init__(self, view: MessageView) -> None:
        super().__init__()
        self.view = view

    @property
    def control(self) -> MessageView:
        return self.view


class CopyRequested(MessageAction):
    """Copy the message's text."""


class CopyCodeRequested(MessageAction):
    """Copy the message's next code block."""


class DeleteRequested(MessageAction):
    """Delete the message (after confirming)."""


class EditRequested(MessageAction):
    """Edit the message and send it again (only the last one of today)."""
