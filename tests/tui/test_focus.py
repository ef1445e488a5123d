"""Focus: after any action the composer has the keys, so letters typed for a
message never fire a message's one-letter actions (issue 13: Retry left focus
on the list, and `d` + Enter deleted a message)."""

from __future__ import annotations

from collections.abc import Callable

from textual import events
from textual.pilot import Pilot

from grizz_tui.store import memory
from grizz_tui.store.db import Database
from grizz_tui.tui.app import GrizzApp
from grizz_tui.tui.screens.confirm import ConfirmScreen
from grizz_tui.tui.screens.days import DaysScreen
from grizz_tui.tui.widgets.composer import Composer
from grizz_tui.tui.widgets.notices import ErrorNotice, MemoryNotice
from tests.fakes.openai_server import FakeOpenAI, HttpError, Text, ToolCalls
from tests.tui.conftest import Seed
from tests.tui.helpers import (
    live_messages,
    type_and_send,
    wait_ready,
    wait_reply_done,
    wait_shown,
    wait_until,
)

AppFactory = Callable[..., GrizzApp]


async def typed_after(pilot: Pilot[object], app: GrizzApp, text: str) -> None:
    """Type `text` as a user would; it must land in the composer."""
    await pilot.press(*text)
    await pilot.pause()
    assert isinstance(app.focused, Composer)
    assert app.chat.composer.text.endswith(text)
    assert not isinstance(app.screen, ConfirmScreen)


class TestTypingAhead:
    async def test_keys_typed_right_after_enter_are_kept(
        self, app_factory: AppFactory, provider_env: FakeOpenAI, today: str
    ) -> None:
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            composer = app.chat.composer
            composer.insert("first message")
            # Enter and the next keys arrive before the send is handled.
            composer.post_message(events.Key("enter", None))
            for char in "and then":
                composer.post_message(events.Key(char, char))
            await wait_reply_done(pilot)
            assert composer.text == "and then"
            assert live_messages(app, today)[0].content == "first message"


class TestRetry:
    async def test_retry_gives_the_keys_back_to_the_composer(
        self, app_factory: AppFactory, provider_env: FakeOpenAI, today: str
    ) -> None:
        provider_env.enqueue(HttpError(400, "model is overloaded"))
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            await type_and_send(pilot, "are you there?")
            await wait_reply_done(pilot)
            await wait_until(pilot, lambda: bool(app.chat.query(ErrorNotice)))
            provider_env.enqueue(Text("Yes, I'm here."))
            await pilot.click("#retry")
            await wait_reply_done(pilot)
            await typed_after(pilot, app, "dec")
            assert [m.content for m in live_messages(app, today)] == [
                "are you there?",
                "Yes, I'm here.",
            ]


class TestDialogs:
    async def test_delete_defaults_to_cancel_and_focus_returns_to_the_composer(
        self, app_factory: AppFactory, provider_env: FakeOpenAI, seed: Seed, today: str
    ) -> None:
        seed(today, ("user", "keep me"), ("assistant", "and me"))
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            await wait_until(pilot, lambda: len(app.chat.conversation.views) == 2)
            app.chat.conversation.views[1].focus()
            await pilot.press("d")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("enter")  # an Enter meant for something else
            await wait_until(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
            await typed_after(pilot, app, "hello")
            assert [m.content for m in live_messages(app, today)] == [
                "keep me",
                "and me",
            ]

    async def test_a_closed_dialog_gives_the_keys_back_to_the_composer(
        self, app_factory: AppFactory, provider_env: FakeOpenAI, seed: Seed, today: str
    ) -> None:
        seed(today, ("user", "hi"), ("assistant", "hello"))
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            await wait_until(pilot, lambda: len(app.chat.conversation.views) == 2)
            app.chat.conversation.views[1].focus()
            await pilot.press("ctrl+g")
            await wait_until(pilot, lambda: isinstance(app.screen, DaysScreen))
            await pilot.press("escape")
            await wait_until(pilot, lambda: not isinstance(app.screen, DaysScreen))
            await typed_after(pilot, app, "dec")


class TestNotices:
    async def test_undo_gives_the_keys_back_to_the_composer(
        self, app_factory: AppFactory, provider_env: FakeOpenAI, db: Database
    ) -> None:
        provider_env.enqueue(
            ToolCalls([("remember", {"content": "Birthday is 3 March"})]),
            Text("Noted!"),
        )
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            await type_and_send(pilot, "my birthday is 3 March")
            await wait_reply_done(pilot)
            assert app.chat.query(MemoryNotice)
            await wait_shown(pilot, "Remembered")
            await pilot.click(".undo")
            await pilot.pause()
            assert memory.list_memory(db) == []
            await typed_after(pilot, app, "dec")
