"""'Grizz is typing…' shown while a reply streams.

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

    def __init__(self, *, animate: bool = True, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.motion = animate
        self._frame = 0
        self._timer: Timer | None = None

    def watch_active(self, active: bool) -> None:
        self.display = active
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
        self.update(f"🐻 Grizz is typing{FRAMES[self._frame % len(FRAMES)]}")
