"""'Grizz is typing…' shown while a reply streams, and the local model's
load progress ('Loading the local model… 40%') while it loads.

Must not import: the store or the core.
"""

from __future__ import annotations

from textual.reactive import reactive
from textual.timer import Timer
from textual.widgets import Static

FRAMES = ("   ", ".  ", ".. ", "...")


class TypingIndicator(Static):
    """A one-line indicator with animated dots while `active`."""

    active: reactive[bool] = reactive(False)
    """True while Grizz's reply is streaming."""
    model_note: reactive[str] = reactive("")
    """The local model's load progress; shown instead of 'typing' while set."""

    def __init__(self, *, animate: bool = True, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.motion = animate
        self._frame = 0
        self._timer: Timer | None = None

    def watch_model_note(self, note: str) -> None:
        self.display = self.active or bool(note)
        self._show()

    def watch_active(self, active: bool) -> None:
        self.display = active or bool(self.model_note)
        if active and self.motion and self._timer is None:
            self._timer = self.set_interval(0.4, self._tick)
        elif not active and self._timer is not None:
            self._timer.stop()
            self._timer = None
        self._frame = 0
        self._show()

    def _tick(self) -> None:
        self._frame += 1
        self._show()

    def _show(self) -> None:
        if self.model_note:
            self.update(f"🐻 {self.model_note}")
            return
        self.update(f"🐻 Grizz is typing{FRAMES[self._frame % len(FRAMES)]}")
