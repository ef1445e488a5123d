"""Attach an image: a path input that completes file names as you type.

Returns the typed path through `dismiss`; the chat screen reads and checks
the file (`core.attachments.load_image`), so a bad path gets a one-line notice.

Must not import: the store or the core.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.suggester import Suggester
from textual.widgets import Input, Static

if TYPE_CHECKING:
    from textual.app import ComposeResult


class PathSuggester(Suggester):
    """Suggests the first file name that completes the last path component."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        if not value:
            return None
        path = Path(value).expanduser()
        folder, stem = (path, "") if value.endswith("/") else (path.parent, path.name)
        try:
            names = sorted(p.name for p in folder.iterdir() if p.name.startswith(stem))
        except OSError:
            return None
        if not names:
            return None
        return value[: len(value) - len(stem)] + names[0]


class AttachScreen(ModalScreen[str]):
    """Type or complete (→) the path of a PNG, JPEG, GIF or WebP image."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss('')", "Cancel")]

    def __init__(self) -> None:
        super().__init__(classes="dialog-screen")

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static("Attach an image (→ completes, Enter attaches, Esc cancels)")
            yield Input(
                placeholder="~/Pictures/photo.png", suggester=PathSuggester(), id="path"
            )

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())
