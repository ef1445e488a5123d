"""The day navigator: pick a day to read; only that day is then loaded.

Must not import: the core; it reads the day list from the store it is given.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

if TYPE_CHECKING:
    from textual.app import ComposeResult

    from grizz_tui.store.db import Database

DAYS_SHOWN = 365


class DaysScreen(ModalScreen[str]):
    """A list of the days with messages, newest first; Enter opens one."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss('')", "Close")]

    def __init__(self, db: Database, today: str, current: str) -> None:
        super().__init__(classes="dialog-screen")
        self.db = db
        self.today = today
        self.current = current

    def compose(self) -> ComposeResult:
        from grizz_tui.store.conversations import list_days

        days = list_days(self.db, limit=DAYS_SHOWN)
        options = [Option(self._label(self.today, "Today"), id=self.today)]
        options += [
            Option(
                self._label(d.day, f"{d.messages} messages · {d.first_line}"), id=d.day
            )
            for d in days
            if d.day != self.today
        ]
        with Vertical(classes="dialog -tall"):
            yield Static(
                "Days with Grizz (Enter opens, Esc closes)", classes="dialog-title"
            )
            yield OptionList(*options, id="days")

    def _label(self, day: str, detail: str) -> str:
        name = dt.date.fromisoformat(day).strftime("%a %d %b %Y")
        return f"{name}  {detail}"

    def on_mount(self) -> None:
        days = self.query_one(OptionList)
        try:
            days.highlighted = days.get_option_index(self.current)
        except LookupError:
            days.highlighted = 0
        days.focus()

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id or "")
