"""Days, search and memory: read earlier days, find anything, manage notes."""

from __future__ import annotations

import datetime as dt

from grizz_tui.store import memory
from grizz_tui.tui.screens.days import DaysScreen
from grizz_tui.tui.screens.memory import MemoryScreen, NoteEditor
from grizz_tui.tui.screens.search import SearchScreen
from grizz_tui.tui.widgets.composer import Composer
from grizz_tui.tui.widgets.day_calendar import DayCalendar
from grizz_tui.tui.widgets.notices import MemoryNotice
from tests.fakes.openai_server import Text, ToolCalls
from tests.tui.helpers import (
    screen_text,
    shown,
    type_and_send,
    wait_ready,
    wait_reply_done,
    wait_shown,
    wait_until,
)


class TestDays:
    async def test_pick_an_earlier_day_loads_only_that_day(
        self, app_factory, provider_env, seed, today
    ):
        seed("2025-03-03", ("user", "march thoughts"), ("assistant", "march reply"))
        seed("2025-04-04", ("user", "april thoughts"))
        seed(today, ("user", "today thoughts"))
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            await pilot.press("ctrl+g")
            await wait_until(pilot, lambda: isinstance(app.screen, DaysScreen))
            await pilot.pause()
            calendar = app.screen.query_one(DayCalendar)
            calendar.selected = dt.date(2025, 4, 4)
            await pilot.pause()
            assert "april thoughts" in screen_text(app)
            calendar.selected = dt.date(2025, 3, 3)
            await pilot.pause()
            text = screen_text(app)
            assert (
                "Today" in text
                and "Mon 03 Mar 2025" in text
                and "march thoughts" in text
            )
            await pilot.press("enter")
            await wait_until(pilot, lambda: app.chat.day == "2025-03-03")
            await pilot.pause()
            assert [s[2] for s in shown(app)] == ["march thoughts", "march reply"]
            await wait_shown(pilot, "Monday 03 March 2025")

    async def test_sending_from_an_earlier_day_writes_to_today(
        self, app_factory, provider_env, seed, today
    ):
        seed("2025-03-03", ("user", "old"))
        provider_env.enqueue(Text("fresh reply"))
        app = app_factory(day="2025-03-03")
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            assert app.chat.day == "2025-03-03"
            await type_and_send(pilot, "new message")
            await wait_reply_done(pilot)
            assert app.chat.day == today
            assert [s[2] for s in shown(app)] == ["new message", "fresh reply"]


class TestSearch:
    async def test_result_opens_its_day_at_the_message(
        self, app_factory, provider_env, seed, today
    ):
        seed("2025-03-03", *[("user", f"filler {i}") for i in range(80)])
        target = seed("2025-03-03", ("user", "the blue heron came back"))[0]
        seed("2025-03-03", *[("user", f"after {i}") for i in range(80)])
        seed(today, ("user", "today"))
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            await pilot.press("ctrl+f")
            await wait_until(pilot, lambda: isinstance(app.screen, SearchScreen))
            await pilot.press(*"heron")
            await pilot.pause()
            await wait_shown(pilot, "1 found")
            await wait_shown(pilot, "2025-03-03")
            await pilot.press("enter")
            await wait_until(pilot, lambda: app.chat.day == "2025-03-03")
            await pilot.pause()
            view = app.chat.conversation.view_of(target.id)
            assert view is not None and view.has_class("-found")
            # Shown and highlighted; the keys stay with the composer (issue 13).
            assert isinstance(app.focused, Composer)
            await wait_shown(pilot, "the blue heron came back")

    async def test_memory_notes_are_found_too(self, app_factory, provider_env, db):
        memory.add_memory(db, "Loves herons and early walks", title="birds")
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            await pilot.press("ctrl+f")
            await wait_until(pilot, lambda: isinstance(app.screen, SearchScreen))
            await pilot.press(*"herons")
            await pilot.pause()
            await wait_shown(pilot, "Note")
            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, MemoryScreen))

    async def test_nothing_found(self, app_factory, provider_env):
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            await pilot.press("ctrl+f")
            await wait_until(pilot, lambda: isinstance(app.screen, SearchScreen))
            await pilot.press(*"zebra")
            await pilot.pause()
            await wait_shown(pilot, "Nothing found.")
            await pilot.press("escape")
            assert app.screen is app.chat


class TestMemoryScreen:
    async def test_add_edit_delete_and_search(self, app_factory, provider_env, db):
        memory.add_memory(db, "Has a cat called Miso")
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            await pilot.press("ctrl+n")
            await wait_until(pilot, lambda: isinstance(app.screen, MemoryScreen))
            await pilot.pause()
            await wait_shown(pilot, "Has a cat called Miso")

            await pilot.press("a")
            await wait_until(pilot, lambda: isinstance(app.screen, NoteEditor))
            app.screen.query_one("#note-content").load_text("Drinks green tea")
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: isinstance(app.screen, MemoryScreen))
            assert [m.content for m in memory.list_memory(db)] == [
                "Drinks green tea",
                "Has a cat called Miso",
            ]

            notes = app.screen.query_one("#notes")
            notes.highlighted = 1
            await pilot.press("e")
            await wait_until(pilot, lambda: isinstance(app.screen, NoteEditor))
            app.screen.query_one("#note-content").load_text(
                "Has a cat called Miso (ginger)"
            )
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: isinstance(app.screen, MemoryScreen))
            assert "Has a cat called Miso (ginger)" in [
                m.content for m in memory.list_memory(db)
            ]

            await pilot.press("slash", *"tea", "enter")
            await pilot.pause()
            assert [m.content for m in app.screen.items] == ["Drinks green tea"]
            await pilot.press("d")
            await pilot.click("#yes")
            await wait_until(pilot, lambda: isinstance(app.screen, MemoryScreen))
            await pilot.pause()
            assert [m.content for m in memory.list_memory(db)] == [
                "Has a cat called Miso (ginger)"
            ]
            gone = memory.search_memory(db, "tea")
            assert gone == []
            rows = list(
                db.execute(
                    "SELECT deleted FROM memory WHERE content = ?", ["Drinks green tea"]
                )
            )
            assert rows == [(1,)]

    async def test_empty_note_is_refused(self, app_factory, provider_env, db):
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            await pilot.press("ctrl+n")
            await wait_until(pilot, lambda: isinstance(app.screen, MemoryScreen))
            await pilot.press("a")
            await wait_until(pilot, lambda: isinstance(app.screen, NoteEditor))
            await pilot.press("ctrl+s")
            assert isinstance(app.screen, NoteEditor)
            assert memory.list_memory(db) == []


class TestMemoryNotice:
    async def test_remember_during_a_reply_can_be_undone(
        self, app_factory, provider_env, db
    ):
        provider_env.enqueue(
            ToolCalls([("remember", {"content": "Birthday is 3 March"})]),
            Text("Noted, I'll remember your birthday!"),
        )
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            await type_and_send(pilot, "my birthday is 3 March")
            await wait_reply_done(pilot)
            notice = app.chat.query_one(MemoryNotice)
            await wait_shown(pilot, "Remembered: Birthday is 3 March")
            assert [m.content for m in memory.list_memory(db)] == [
                "Birthday is 3 March"
            ]
            await pilot.click(".undo")
            await pilot.pause()
            assert memory.list_memory(db) == []
            assert not notice.is_attached

    async def test_forget_during_a_reply_can_be_undone(
        self, app_factory, provider_env, db
    ):
        note = memory.add_memory(db, "Works at the bakery")
        provider_env.enqueue(
            ToolCalls([("forget", {"id": note.id[:8]})]),
            Text("Done, forgotten."),
        )
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            await type_and_send(pilot, "forget where I work")
            await wait_reply_done(pilot)
            await wait_shown(pilot, "Forgot: Works at the bakery")
            assert memory.list_memory(db) == []
            await pilot.press("f8")
            await pilot.pause()
            assert [m.content for m in memory.list_memory(db)] == [
                "Works at the bakery"
            ]
