"""In-chat notices: a provider error with Retry, a memory change with Undo,
and `Notices`, the strip above the composer that holds them (and undoes a
memory change when asked; Retry goes up to the screen).

They live between the messages and the composer, so the user sees them where
they are looking; they are widgets, not toasts, because they carry a button.

Must not import: the store or the core.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import Button, Static

if TYPE_CHECKING:
    from textual.app import ComposeResult

    from grizz_tui.tui.backend import Backend


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


class Notices(Vertical):
    """The notices between the messages and the composer (one of each kind)."""

    def __init__(
        self,
        backend: Backend,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.backend = backend
        """Where a memory change is undone."""

    class Acted(Message):
        """A notice's button did its job (the notice is gone with its focus)."""

    @on(MemoryNotice.UndoPressed)
    async def _undo_pressed(self, event: MemoryNotice.UndoPressed) -> None:
        event.stop()
        await self.undo(event.notice)
        self.post_message(self.Acted())

    async def show_error(self, reason: str, *, retry: bool = True) -> None:
        """Replace any error notice with one for `reason`."""
        await self.query(".notice.-error").remove()
        await self.mount(ErrorNotice(reason, retry=retry))

    def clear_errors(self) -> None:
        for notice in self.query(".notice.-error"):
            notice.remove()

    async def show_memory_change(self, tool: str, summary: str, memory_id: str) -> None:
        """Replace any memory notice with one for this change."""
        await self.query(".notice.-memory").remove()
        await self.mount(MemoryNotice(tool, summary, memory_id))

    async def undo_last(self) -> None:
        """Undo the memory change on screen, if there is one."""
        notices = list(self.query(MemoryNotice))
        if not notices:
            self.notify("There is no memory change to undo.")
            return
        await self.undo(notices[-1])

    async def drop_stale(self) -> None:
        """Remove memory notices whose change the user has since undone by
        hand (deleted the remembered note, restored the forgotten one)."""
        for notice in list(self.query(MemoryNotice)):
            if not self.backend.memory_change_stands(notice.tool, notice.memory_id):
                await notice.remove()

    async def undo(self, notice: MemoryNotice) -> None:
        """Undo `notice`'s change (forget what was remembered, or restore)."""
        if not self.backend.memory_change_stands(notice.tool, notice.memory_id):
            self.notify("That note has changed since; there is nothing to undo.")
            await notice.remove()
            return
        self.backend.undo_memory_change(notice.tool, notice.memory_id)
        if notice.tool == "remember":
            self.notify("Undone: Grizz forgot that again.")
        else:
            self.notify("Undone: the note is back.")
        await notice.remove()
