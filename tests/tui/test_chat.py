"""The chat screen: opening on today, sending, streaming, scrolling, footer."""

from __future__ import annotations

from grizz_tui.tui.messages import DayShown
from grizz_tui.tui.widgets.composer import Composer
from tests.fakes.openai_server import Text
from tests.tui.helpers import (
    live_messages,
    screen_text,
    shown,
    type_and_send,
    wait_ready,
    wait_reply_done,
    wait_shown,
    wait_until,
)

MARKDOWN = "Hello **there**!\n\n- one\n- two\n\n```python\nprint(1)\n```\n"


class TestOpening:
    async def test_opens_on_today_only_with_composer_focused(
        self, app_factory, provider_env, seed, today
    ):
        seed("2020-01-01", ("user", "an old day"), ("assistant", "old reply"))
        seed(today, ("user", "good morning"), ("assistant", "Morning! 🐻"))
        seen = []
        app = app_factory()
        async with app.run_test(size=(100, 30), message_hook=seen.append) as pilot:
            await wait_ready(pilot)
            assert isinstance(app.focused, Composer)
            assert [s[2] for s in shown(app)] == ["good morning", "Morning! 🐻"]
            assert "an old day" not in screen_text(app)
            assert {m.day for m in seen if isinstance(m, DayShown)} == {today}

    async def test_empty_day_greets(self, app_factory, provider_env):
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            await wait_shown(pilot, "I'm Grizz")

    async def test_footer_shows_provider_and_newline_hint(
        self, app_factory, provider_env
    ):
        app = app_factory()
        async with app.run_test(size=(120, 30)) as pilot:
            await wait_ready(pilot)
            text = screen_text(app)
            assert "fake-model @ 127.0.0.1" in text
            assert "ctrl+j newline" in text


class TestSending:
    async def test_enter_sends_and_reply_streams_then_is_stored(
        self, app_factory, provider_env, today
    ):
        provider_env.enqueue(Text(MARKDOWN, chunk=3, delay=0.005))
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            await type_and_send(pilot, "hi grizz")
            await wait_reply_done(pilot)
            assert shown(app) == [
                ("user", "complete", "hi grizz"),
                ("assistant", "complete", MARKDOWN),
            ]
            stored = live_messages(app, today)
            assert [m.content for m in stored] == ["hi grizz", MARKDOWN]
            assert app.chat.composer.text == ""
            await wait_shown(pilot, "↑10 ↓5 tokens")
        assert provider_env.requests[0]["messages"][-1]["content"] == "hi grizz"

    async def test_newline_key_inserts_a_line_break(self, app_factory, provider_env):
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            await pilot.press("a", "ctrl+j", "b")
            assert app.chat.composer.text == "a\nb"
            assert provider_env.requests == []

    async def test_configured_newline_key(self, app_factory, provider_env, monkeypatch):
        monkeypatch.setenv("GRIZZ_TUI__NEWLINE_KEY", "shift+enter")
        app = app_factory()
        async with app.run_test(size=(120, 30)) as pilot:
            await wait_ready(pilot)
            await pilot.press("a", "shift+enter", "b")
            assert app.chat.composer.text == "a\nb"
            await wait_shown(pilot, "shift+enter newline")

    async def test_empty_message_is_not_sent(self, app_factory, provider_env):
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            await pilot.press("space", "enter")
            await pilot.pause(0.1)
            assert provider_env.requests == []
            assert shown(app) == []

    async def test_typing_indicator_while_streaming(self, app_factory, provider_env):
        provider_env.enqueue(Text("slow " * 40, chunk=5, delay=0.02))
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            await type_and_send(pilot, "hello")
            await wait_until(
                pilot, lambda: "Grizz is typing" in screen_text(app), what="indicator"
            )
            assert app.chat.typing.display
            await wait_reply_done(pilot)
            assert not app.chat.typing.display


class TestScrolling:
    async def test_follows_the_reply_until_the_user_scrolls_up(
        self, app_factory, provider_env, seed, today
    ):
        seed(today, *[("user", f"earlier message {i}") for i in range(30)])
        long_reply = "".join(f"Paragraph {i}.\n\n" for i in range(120))
        provider_env.enqueue(Text(long_reply, chunk=12, delay=0.01))
        app = app_factory()
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_ready(pilot)
            conversation = app.chat.conversation
            await type_and_send(pilot, "tell me a lot")
            await wait_until(
                pilot, lambda: "Paragraph 30" in _reply_source(app), what="some text"
            )
            await pilot.pause(0.05)
            assert conversation.scroll_y >= conversation.max_scroll_y - 2
            conversation.scroll_up(animate=False)
            conversation.scroll_up(animate=False)
            await pilot.pause(0.05)
            held = conversation.scroll_y
            await wait_until(
                pilot, lambda: "Paragraph 80" in _reply_source(app), what="more text"
            )
            assert conversation.scroll_y == held
            assert conversation.max_scroll_y > held + 5
            await wait_reply_done(pilot)


def _reply_source(app) -> str:
    view = app.chat.conversation.last_view("assistant")
    return view.markdown.source if view is not None else ""


class TestLongDay:
    async def test_opens_on_the_last_messages_and_shows_earlier_on_demand(
        self, app_factory, provider_env, seed, today
    ):
        seed(today, *[("user", f"message number {i}") for i in range(40)])
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            conversation = app.chat.conversation
            await wait_until(
                pilot, lambda: len(conversation.views) == 24, what="window"
            )
            texts = [s[2] for s in shown(app)]
            assert texts == [f"message number {i}" for i in range(16, 40)]
            assert "Show 16 earlier messages" in str(
                conversation.query_one("#earlier").label
            )
            conversation.scroll_home(animate=False)
            await pilot.pause()
            await pilot.click("#earlier")
            await wait_until(pilot, lambda: len(conversation.views) == 40)
            assert [s[2] for s in shown(app)] == [
                f"message number {i}" for i in range(40)
            ]
