"""The day calendar: marks per day, keyboard moves, Enter opens, Esc closes,
and only the months on screen are read."""

from __future__ import annotations

import datetime as dt

from grizz_tui.tui.screens.days import DaysScreen
from grizz_tui.tui.widgets.day_calendar import DayCalendar, add_months, mark_for
from tests.tui.helpers import screen_text, shown, wait_ready, wait_until


def test_mark_grows_with_the_day_and_months_clamp() -> None:
    assert [mark_for(n) for n in (0, 1, 5, 20, 60)] == [" ", "·", "∙", "•", "●"]
    assert add_months(dt.date(2025, 3, 31), -1) == dt.date(2025, 2, 28)
    assert add_months(dt.date(2025, 1, 15), -13) == dt.date(2023, 12, 15)


async def open_calendar(pilot, app) -> DayCalendar:
    await wait_ready(pilot)
    await pilot.press("ctrl+g")
    await wait_until(pilot, lambda: isinstance(app.screen, DaysScreen))
    await pilot.pause()
    return app.screen.query_one(DayCalendar)


class TestCalendar:
    async def test_keys_move_by_day_week_and_month_and_enter_opens(
        self, app_factory, provider_env, seed, today
    ):
        day = dt.date.fromisoformat(today)
        week_ago = (day - dt.timedelta(days=8)).isoformat()
        seed(week_ago, ("user", "eight days ago"), ("assistant", "a reply"))
        seed(today, ("user", "today's first words"))
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            calendar = await open_calendar(pilot, app)
            assert calendar.has_focus and calendar.selected == day
            assert "today's first words" in screen_text(app)
            await pilot.press("up", "left")
            assert calendar.selected.isoformat() == week_ago
            await pilot.pause()
            assert "eight days ago" in screen_text(app)
            assert "2 messages" in screen_text(app)
            await pilot.press("pageup")
            assert calendar.selected == add_months(day - dt.timedelta(days=8), -1)
            await pilot.press("pagedown", "down", "right", "up", "left")
            assert calendar.selected.isoformat() == week_ago
            await pilot.press("enter")
            await wait_until(pilot, lambda: app.chat.day == week_ago)
            await pilot.pause()
            assert [s[2] for s in shown(app)] == ["eight days ago", "a reply"]

    async def test_escape_closes_without_changing_day(
        self, app_factory, provider_env, today
    ):
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            calendar = await open_calendar(pilot, app)
            await pilot.press("pageup", "pageup")
            assert calendar.selected != dt.date.fromisoformat(today)
            await pilot.press("escape")
            await wait_until(pilot, lambda: not isinstance(app.screen, DaysScreen))
            assert app.chat.day == today

    async def test_reads_only_the_months_on_screen(
        self, app_factory, provider_env, seed, today
    ):
        seed("2021-01-05", ("user", "long ago"))
        seed(today, ("user", "now"))
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            calendar = await open_calendar(pilot, app)
            this_month = dt.date.fromisoformat(today).replace(day=1)
            assert calendar.months_read() == sorted(
                d.isoformat()[:7] for d in (this_month, add_months(this_month, -1))
            )
            await pilot.press("pageup")  # the same two months: nothing read
            await pilot.pause()
            assert len(calendar.months_read()) == 2
            await pilot.press("pageup")
            await pilot.pause()
            assert len(calendar.months_read()) == 3
            assert calendar.count(dt.date(2021, 1, 5)) == 1
