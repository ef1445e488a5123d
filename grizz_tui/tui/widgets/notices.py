"""In-chat notices: a provider error with Retry, a memory change with Undo.

They live between the messages and the composer, so the user sees them where
they are looking; they are widgets, not toasts, because they carry a button.

Must not import: the store or the core.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on
from textual.containers import Horizontal
from textual.content import Content
from textual.message import Message
from textual.widgets import Button, Static

if TYPE_CHECKING:
    from textual.app import ComposeResult


class ErrorNotice(Horizontal):
    """'Grizz couldn't answer: <reason>' with a Retry button."""

    class RetryPressed(Message):
        """The user asked to try the last message again."""

    def __init__(
        self, reason: str, *, retry: bool = True, id: str | None = None
    ) -> None:
        super().__init__(id=id, classes="notice -error")
        self.reason = reason
        self.retry = retry

    def compose(self) -> ComposeResult:
        yield Static(
            Content.assemble(("Grizz couldn't answer: ", "bold"), self.reason),
            classes="notice-text",
        )
        if self.retry:
            yield Button("Retry", id="retry", compact=True, variant="warning")

    @on(Button.Pressed, "#retry")
    def _retry(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(self.RetryPressed())


class MemoryNotice(Horizontal):
    """'Grizz remembered: …' (or forgot) with an Undo button."""

    class UndoPressed(Message):
        """The user wants the memory change undone."""

        def __init__(self, notice: MemoryNotice) -> None:
            super().__init__()
            self.notice = notice

    def __init__(self, tool: str, summary: str, memory_id: str) -> None:
        super().__init__(classes="notice -memory")
        self.tool = tool
        self.summary = summary
        self.memory_id = memory_id

    def compose(self) -> ComposeResult:
        yield Static(Content("🐻 " + self.summary), classes="notice-text")
        yield Button("Undo", classes="undo", compact=True)

    @on(Button.Pressed, ".undo")
    def _undo(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(self.UndoPressed(self))
