"""The day navigator: a calendar of months with a mark per day you talked.

Arrows move by day and week, PageUp/PageDown by month, Home goes to today,
Enter opens the selected day, Esc closes. Beside the calendar: today's and the
selected day's first lines. Only the months on screen and those two days are
read, so years of history cost nothing here.

Must not import: the core; it reads the store it is given.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from grizz_tui.tui.widgets.day_calendar import DayCalendar

if TYPE_CHECKING:
    from textual.app import ComposeResult

    from grizz_tui.store.db import Database


class DaysScreen(ModalScreen[str]):
    """The calendar; dismisses with the chosen day ("" when closed)."""

    DEFAULT_CSS = """
    DaysScreen #days-side { width: 1fr; height: auto; padding: 0 1; }
    DaysScreen #days-body { height: auto; }
    DaysScreen .days-line { margin-bottom: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss('')", "Close")]

    def __init__(self, db: Database, today: str, current: str) -> None:
        super().__init__(classes="dialog-screen")
        self.db = db
        self.today = today
        self.current = current

    def compose(self) -> ComposeResult:
        from grizz_tui.store.calendar import month_days

        today = dt.date.fromisoformat(self.today)
        with Vertical(classes="dialog -tall"):
            yield Static(
                "Days with Grizz (arrows, PgUp/PgDn, Enter opens, Esc closes)",
                classes="dialog-title",
            )
            with Horizontal(id="days-body"):
                yield DayCalendar(
                    lambda month: month_days(self.db, month),
                    today=today,
                    selected=dt.date.fromisoformat(self.current),
                    id="days",
                )
                with Vertical(id="days-side"):
                    yield Static(id="days-today", classes="days-line")
                    yield Static(id="days-selected", classes="days-line")

    def on_mount(self) -> None:
        calendar = self.query_one(DayCalendar)
        self.query_one("#days-today", Static).update(
            self._describe("Today", calendar.today, calendar)
        )
        self._show_selected()
        calendar.focus()

    def _describe(self, heading: str, day: dt.date, calendar: DayCalendar) -> str:
        from rich.markup import escape

        from grizz_tui.store.calendar import first_line

        count = calendar.count(day)
        noun = "message" if count == 1 else "messages"
        line = first_line(self.db, day.isoformat()) if count else ""
        return f"[b]{heading}[/b] · {day.strftime('%a %d %b %Y')}\n{count} {noun}" + (
            f"\n[i]{escape(line)}[/i]" if line else ""
        )

    @on(DayCalendar.Chosen)
    def _chosen(self, event: DayCalendar.Chosen) -> None:
        self.dismiss(event.day.isoformat())

    @on(DayCalendar.Moved)
    def _show_selected(self) -> None:
        calendar = self.query_one(DayCalendar)
        self.query_one("#days-selected", Static).update(
            self._describe("Selected", calendar.selected, calendar)
        )
