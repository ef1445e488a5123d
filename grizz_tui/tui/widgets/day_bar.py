"""The line above the conversation: which day is on screen."""

from __future__ import annotations

import datetime as dt

from textual.widgets import Static


class DayBar(Static):
    """Says "Today", or the earlier day being read and how to get back."""

    def show(self, day: str, today: str) -> None:
        """Name `day` (`YYYY-MM-DD`); `today` is the user's today."""
        self.update(day_label(day, today))


def day_label(day: str, today: str) -> str:
    if day == today:
        label = "Today"
    else:
        label = dt.date.fromisoformat(day).strftime("%A %d %B %Y")
        label += "  (reading an earlier day · Enter writes to today)"
    return f"🐻 Grizz · {label}"
