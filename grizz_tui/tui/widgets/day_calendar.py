"""A keyboard-driven calendar of months with a mark per day you talked.

The mark's size tells the day's length (· ∙ • ● by message count). Only the
months on screen are read, through `counts` (month "YYYY-MM" -> {day: count}),
each at most once. Must not import: the store or the core; it is given its
reader.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

MARKS: tuple[tuple[int, str], ...] = ((60, "●"), (20, "•"), (5, "∙"), (1, "·"))
"""(at least this many messages, mark), largest first."""
WEEKDAYS = "Mo  Tu  We  Th  Fr  Sa  Su"
CELL = 4


def mark_for(count: int) -> str:
    """The mark of a day with `count` messages (" " for none)."""
    return next((mark for least, mark in MARKS if count >= least), " ")


def add_months(day: dt.date, months: int) -> dt.date:
    """`day` moved by `months`, clamped to the end of shorter months."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return dt.date(year, month + 1, min(day.day, last))


class DayCalendar(Widget, can_focus=True):
    """Two months, one above the other: the selected day's and its neighbour."""

    DEFAULT_CSS = """
    DayCalendar { width: 30; height: auto; padding: 0 1; }
    DayCalendar:focus { background-tint: $foreground 5%; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left", "move(-1)", "Day before", show=False),
        Binding("right", "move(1)", "Day after", show=False),
        Binding("up", "move(-7)", "Week before", show=False),
        Binding("down", "move(7)", "Week after", show=False),
        Binding("pageup", "month(-1)", "Month before", show=False),
        Binding("pagedown", "month(1)", "Month after", show=False),
        Binding("home", "today", "Today", show=False),
        Binding("enter", "choose", "Open", show=False),
    ]
    MONTHS = 2

    selected: reactive[dt.date] = reactive(dt.date(2000, 1, 1))

    class Chosen(Message):
        """Enter on a day."""

        def __init__(self, day: dt.date) -> None:
            super().__init__()
            self.day = day

    class Moved(Message):
        """The selection moved to another day."""

    def __init__(
        self,
        counts: Callable[[str], dict[str, int]],
        *,
        today: dt.date,
        selected: dt.date,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self._read = counts
        self._months: dict[str, dict[str, int]] = {}
        self.today = today
        self.set_reactive(DayCalendar.selected, selected)

    def count(self, day: dt.date) -> int:
        """Messages on `day` (reads its month once)."""
        month = day.isoformat()[:7]
        if month not in self._months:
            self._months[month] = self._read(month)
        return self._months[month].get(day.isoformat(), 0)

    def months_read(self) -> list[str]:
        return sorted(self._months)

    def watch_selected(self) -> None:
        self.post_message(self.Moved())

    def action_move(self, days: int) -> None:
        self.selected += dt.timedelta(days=days)

    def action_month(self, months: int) -> None:
        self.selected = add_months(self.selected, months)

    def action_today(self) -> None:
        self.selected = self.today

    def action_choose(self) -> None:
        self.post_message(self.Chosen(self.selected))

    def render(self) -> Text:
        text = Text()
        first = add_months(self.last_month(), 1 - self.MONTHS)
        for i in range(self.MONTHS):
            if i:
                text.append("\n\n")
            self._month(text, add_months(first, i))
        return text

    def last_month(self) -> dt.date:
        """The bottom month: the one after the selection, never after today's."""
        selected = self.selected.replace(day=1)
        following = add_months(selected, 1)
        return max(selected, min(following, self.today.replace(day=1)))

    def _month(self, text: Text, first: dt.date) -> None:
        text.append(first.strftime("%B %Y").center(CELL * 7 - 1), style="bold")
        text.append("\n" + WEEKDAYS, style="dim")
        weeks = calendar.Calendar().monthdatescalendar(first.year, first.month)
        for week in weeks:
            text.append("\n")
            for day in week:
                if day.month != first.month:
                    text.append(" " * CELL)
                    continue
                self._cell(text, day)

    def _cell(self, text: Text, day: dt.date) -> None:
        style = "underline" if day == self.today else ""
        if day == self.selected:
            style = "reverse bold"
        text.append(f"{day.day:>2}", style=style)
        text.append(mark_for(self.count(day)), style="bold")
        text.append(" ")
