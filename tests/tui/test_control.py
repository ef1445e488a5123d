"""Control over replies and messages: cancel, errors, regenerate, edit, delete, copy."""

from __future__ import annotations

from grizz_tui.store import conversations as conv
from grizz_tui.tui.screens.confirm import ConfirmScreen
from grizz_tui.tui.widgets.notices import ErrorNotice
from tests.fakes.openai_server import HttpError, Text
from tests.tui.helpers import (
    live_messages,
    shown,
    type_and_send,
    wait_ready,
    wait_reply_done,
    wait_shown,
    wait_until,
)


class TestCancel:
    async def test_escape_keeps_the_partial_reply_marked_interrupted(
        self, app_factory, provider_env, today
    ):
        provider_env.enqueue(Text("word " * 400, chunk=5, delay=0.01))
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            await type_and_send(pilot, "talk to me")
            await wait_until(pilot, lambda: _reply_len(app) > 50, what="partial text")
            await pilot.press("escape")
            await wait_reply_done(pilot)
            stored = live_messages(app, today)
            assert [str(m.status) for m in stored] == ["complete", "interrupted"]
            partial = stored[1].content
            assert 50 <= len(partial) < len("word " * 400)
            assert shown(app)[1] == ("assistant", "interrupted", partial)
            await wait_shown(pilot, "interrupted")
            assert not app.chat.typing.display


class TestProviderError:
    async def test_error_shows_a_notice_and_keeps_the_message(
        self, app_factory, provider_env, today
    ):
        provider_env.enqueue(HttpError(400, "model is overloaded with feelings"))
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            await type_and_send(pilot, "are you there?")
            await wait_reply_done(pilot)
            notice = app.chat.query_one(ErrorNotice)
            assert "HTTP 400" in notice.reason
            await wait_shown(pilot, "overloaded with feelings")
            stored = live_messages(app, today)
            assert stored[0].content == "are you there?"
            assert str(stored[1].status) == "error"

            provider_env.enqueue(Text("Yes, I'm here."))
            await pilot.click("#retry")
            await wait_reply_done(pilot)
            assert not app.chat.query(ErrorNotice)
            assert shown(app) == [
                ("user", "complete", "are you there?"),
                ("assistant", "complete", "Yes, I'm here."),
            ]
            assert [m.content for m in live_messages(app, today)] == [
                "are you there?",
                "Yes, I'm here.",
            ]

    async def test_unreachable_provider_is_a_notice_not_a_crash(
        self, app_factory, monkeypatch, today
    ):
        monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
        monkeypatch.setenv("GRIZZ_MAX_RETRIES", "0")
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            await type_and_send(pilot, "hello?")
            await wait_reply_done(pilot)
            assert "Could not reach" in app.chat.query_one(ErrorNotice).reason
            assert live_messages(app, today)[0].content == "hello?"
            assert app.is_running


class TestRegenerateAndEdit:
    async def test_regenerate_replaces_the_last_reply(
        self, app_factory, provider_env, today
    ):
        provider_env.enqueue(Text("first answer"), Text("second answer"))
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            await type_and_send(pilot, "question")
            await wait_reply_done(pilot)
            first_id = app.chat.conversation.last_view("assistant").message.id
            await pilot.press("ctrl+r")
            await wait_until(pilot, lambda: len(provider_env.requests) == 2)
            await wait_reply_done(pilot)
            assert [s[2] for s in shown(app)] == ["question", "second answer"]
            assert conv.get_message(app.backend.db, first_id).deleted
            assert [m.content for m in live_messages(app, today)] == [
                "question",
                "second answer",
            ]
            sent = provider_env.requests[1]["messages"]
            assert sent[-1]["content"] == "question"
            assert "first answer" not in str(sent)

    async def test_edit_last_message_and_resend(self, app_factory, provider_env, today):
        provider_env.enqueue(Text("reply one"), Text("reply two"))
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            await type_and_send(pilot, "helo")
            await wait_reply_done(pilot)
            await pilot.press("up")  # empty composer: edit the last message
            assert app.chat.composer.text == "helo"
            await wait_shown(pilot, "Editing your last message")
            app.chat.composer.load_text("hello")
            await type_and_send(pilot, "")
            await wait_until(pilot, lambda: len(provider_env.requests) == 2)
            await wait_reply_done(pilot)
            assert [s[2] for s in shown(app)] == ["hello", "reply two"]
            assert [m.content for m in live_messages(app, today)] == [
                "hello",
                "reply two",
            ]

    async def test_escape_leaves_edit_mode(self, app_factory, provider_env):
        provider_env.enqueue(Text("ok"))
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            await type_and_send(pilot, "draft")
            await wait_reply_done(pilot)
            await pilot.press("ctrl+l")
            assert app.chat.editing is not None
            await pilot.press("escape")
            assert app.chat.editing is None
            assert app.chat.composer.text == ""


class TestMessageActions:
    async def test_delete_tombstones_after_confirming(
        self, app_factory, provider_env, seed, today
    ):
        first, _ = seed(today, ("user", "delete me"), ("assistant", "keep me"))
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            app.chat.conversation.view_of(first.id).focus()
            await pilot.press("d")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.click("#yes")
            await wait_until(pilot, lambda: len(shown(app)) == 1)
            assert shown(app)[0][2] == "keep me"
            assert conv.get_message(app.backend.db, first.id).deleted
            assert [m.content for m in live_messages(app, today)] == ["keep me"]

    async def test_delete_can_be_cancelled(
        self, app_factory, provider_env, seed, today
    ):
        first, _ = seed(today, ("user", "stay"), ("assistant", "ok"))
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            app.chat.conversation.view_of(first.id).focus()
            await pilot.press("d")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("escape")
            assert len(shown(app)) == 2
            assert not conv.get_message(app.backend.db, first.id).deleted

    async def test_copy_message_and_code_blocks(
        self, app_factory, provider_env, seed, today
    ):
        reply = "Try:\n\n```sh\nls -la\n```\n\nor\n\n```python\nprint('hi')\n```\n"
        _, answer = seed(today, ("user", "how?"), ("assistant", reply))
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            app.chat.conversation.view_of(answer.id).focus()
            await pilot.press("c")
            assert app.clipboard == reply
            await pilot.press("k")
            assert app.clipboard == "ls -la"
            await pilot.press("k")
            assert app.clipboard == "print('hi')"
            await pilot.press("k")
            assert app.clipboard == "ls -la"

    async def test_copy_without_code_block_says_so(
        self, app_factory, provider_env, seed, today
    ):
        _, answer = seed(today, ("user", "hi"), ("assistant", "just words"))
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            app.chat.conversation.view_of(answer.id).focus()
            await pilot.press("k")
            assert app.clipboard == ""
            assert any("no code block" in n.message for n in app._notifications)


def _reply_len(app) -> int:
    view = app.chat.conversation.last_view("assistant")
    return len(view.markdown.source) if view is not None else 0
