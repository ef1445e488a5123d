"""The status bar under the composer: who answers, tokens, time, the server
connection, key hints.

Must not import: the store or the core.
"""

from __future__ import annotations

import time

from textual.content import Content
from textual.reactive import reactive
from textual.timer import Timer
from textual.widgets import Static


class StatusBar(Static):
    """`model @ host · ↑in ↓out tokens · 1.2 s` on the left, key hints on the right."""

    provider: reactive[str] = reactive("")
    """`model @ host`, from the settings."""
    usage: reactive[str] = reactive("")
    """Token counts of the last reply (`↑120 ↓48`)."""
    elapsed: reactive[str] = reactive("")
    """How long the last reply took, or the running time of the current one."""
    connection: reactive[str] = reactive("")
    """The server connection (`connected`, `offline, 1 pending`); '' without one."""
    hints: reactive[str] = reactive("")
    """Key hints (`Enter send · ctrl+j newline · F1 help`)."""

    def __init__(
        self,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._started = 0.0
        self._clock: Timer | None = None
        """Ticks `elapsed` while a reply streams."""

    def render(self) -> Content:
        shown = (self.provider, self.usage, self.elapsed, self.connection)
        parts = [p for p in shown if p]
        left = Content(" · ".join(parts))
        return Content.assemble(left, "   ", (self.hints, "dim"))

    def show_usage(self, usage: dict[str, int]) -> None:
        sent = usage.get("prompt_tokens")
        got = usage.get("completion_tokens")
        if sent is None and got is None:
            self.usage = ""
            return
        self.usage = f"↑{sent or 0} ↓{got or 0} tokens"

    def start_clock(self, *, tick: bool = True) -> None:
        """A reply started: clear `elapsed`, then count up (when `tick`)."""
        self._started = time.monotonic()
        self.elapsed = ""
        if tick:
            self._clock = self.set_interval(0.2, self._tick)

    def _tick(self) -> None:
        self.elapsed = f"{time.monotonic() - self._started:.1f} s"

    def stop_clock(self) -> None:
        clock, self._clock = self._clock, None
        if clock is not None:
            clock.stop()

    def show_finished(self, usage: dict[str, int], elapsed: float) -> None:
        """A reply completed: its token counts and how long it took."""
        self.show_usage(usage)
        self.elapsed = f"{elapsed:.1f} s"
