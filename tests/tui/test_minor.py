"""Small defects of the app (issue 13, "Minor"); each test failed before its fix."""

from __future__ import annotations

from textual.widgets import OptionList, Static

from grizz_tui.tui.screens.search import SearchScreen
from tests.fakes.openai_server import Text
from tests.tui.helpers import wait_ready, wait_shown, wait_until


class TestSearchCount:
    async def test_the_count_is_every_match_and_brackets_survive(
        self, app_factory, provider_env, seed
    ):
        seed("2025-03-03", *[("user", f"heron number {i}") for i in range(120)])
        seed("2025-03-04", ("user", "a list [heron] and x[0]"))
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            await pilot.press("ctrl+f")
            await wait_until(pilot, lambda: isinstance(app.screen, SearchScreen))
            await pilot.press(*"heron")
            await wait_shown(pilot, "121 found · showing 40")
            count = app.screen.query_one("#search-count", Static)
            assert "121 found" in str(count.render())
            first = app.screen.query_one(OptionList).get_option_at_index(0)
            assert "[heron] and x[0]" in str(first.prompt)


class TestSetup:
    async def test_the_local_install_hint_keeps_its_brackets(
        self, app_factory, monkeypatch
    ):
        from tests.tui.test_setup import _result, open_setup

        monkeypatch.setenv("GRIZZ_PROVIDER", "openai")
        app = app_factory()
        async with app.run_test(size=(100, 40)) as pilot:
            setup = await open_setup(pilot)
            await pilot.click("#openai")
            await pilot.click("#test")
            await wait_until(pilot, lambda: "No API key" in _result(setup))
            assert "install grizz[local] to talk offline" in _result(setup)

    async def test_presets_replace_the_openai_model(self, app_factory, monkeypatch):
        from textual.widgets import Input

        from tests.tui.test_setup import open_setup

        monkeypatch.setenv("GRIZZ_PROVIDER", "openai")
        app = app_factory()
        async with app.run_test(size=(100, 40)) as pilot:
            setup = await open_setup(pilot)
            model = setup.query_one("#model", Input)
            assert model.value == "gpt-4o-mini"
            await pilot.click("#compatible")
            await pilot.click("#preset-ollama")
            assert model.value == "llama3.2"
            await pilot.click("#preset-lmstudio")
            assert model.value == ""  # LM Studio has no usual model: name one
            model.value = "qwen2.5-7b-instruct"
            await pilot.click("#preset-ollama")
            assert model.value == "qwen2.5-7b-instruct"  # typed: kept


class TestNotes:
    async def test_the_note_dialog_starts_at_the_title_and_edits_at_the_end(
        self, app_factory, provider_env, db
    ):
        from textual.widgets import Input

        from grizz_tui.store import memory
        from grizz_tui.tui.screens.memory import MemoryScreen, NoteEditor

        memory.add_memory(db, "Has a cat")
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            await pilot.press("ctrl+n")
            await wait_until(pilot, lambda: isinstance(app.screen, MemoryScreen))
            await wait_shown(pilot, "1 note")
            count = app.screen.query_one("#memory-count", Static)
            assert str(count.render()) == "1 note"
            await pilot.press("a")
            await wait_until(pilot, lambda: isinstance(app.screen, NoteEditor))
            await pilot.pause()
            assert app.focused is app.screen.query_one("#note-title", Input)
            await pilot.press("escape")
            await wait_until(pilot, lambda: isinstance(app.screen, MemoryScreen))
            await pilot.press("e")
            await wait_until(pilot, lambda: isinstance(app.screen, NoteEditor))
            await pilot.pause()
            await pilot.press(*" called Miso", "ctrl+s")
            await wait_until(pilot, lambda: isinstance(app.screen, MemoryScreen))
            assert [m.content for m in memory.list_memory(db)] == [
                "Has a cat called Miso"
            ]


class TestMemoryNotice:
    async def test_the_notice_goes_when_its_note_is_deleted_meanwhile(
        self, app_factory, provider_env, db
    ):
        from grizz_tui.store import memory
        from grizz_tui.tui.screens.memory import MemoryScreen
        from grizz_tui.tui.widgets.notices import MemoryNotice
        from tests.fakes.openai_server import Text, ToolCalls
        from tests.tui.helpers import type_and_send, wait_reply_done

        provider_env.enqueue(
            ToolCalls([("remember", {"content": "Birthday is 3 March"})]),
            Text("Noted!"),
        )
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            await type_and_send(pilot, "my birthday is 3 March")
            await wait_reply_done(pilot)
            await wait_shown(pilot, "Remembered: Birthday is 3 March")
            await pilot.press("ctrl+n")
            await wait_until(pilot, lambda: isinstance(app.screen, MemoryScreen))
            await wait_shown(pilot, "1 note")
            app.screen.query_one("#notes").focus()
            await pilot.press("d")
            await pilot.click("#yes")
            await wait_until(pilot, lambda: isinstance(app.screen, MemoryScreen))
            await wait_until(pilot, lambda: memory.list_memory(db) == [])
            await pilot.press("escape")
            await wait_until(pilot, lambda: app.screen is app.chat)
            await wait_until(pilot, lambda: not app.chat.query(MemoryNotice))
            await pilot.press("f8")
            await pilot.pause()
            assert memory.list_memory(db) == []


class TestKeysFromTheComposer:
    async def test_page_keys_move_a_long_day_and_bring_in_earlier_messages(
        self, app_factory, provider_env, seed, today
    ):
        from tests.tui.helpers import shown

        seed(today, *[("user", f"message number {i}\n\nline two") for i in range(40)])
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            conversation = app.chat.conversation
            await wait_until(pilot, lambda: len(conversation.views) == 24)
            await pilot.pause()
            bottom = conversation.scroll_y
            assert bottom > 0 and bottom == conversation.max_scroll_y
            await pilot.press("pageup")
            await pilot.pause()
            assert conversation.scroll_y < bottom
            await pilot.press("pagedown", "pagedown", "pagedown")
            await pilot.pause()
            assert conversation.scroll_y == conversation.max_scroll_y
            await pilot.press("home")  # the whole day, from its top
            await wait_until(pilot, lambda: len(conversation.views) == 40)
            await pilot.pause()
            assert conversation.scroll_y == 0
            assert shown(app)[0][2].startswith("message number 0")
            await pilot.press("end")
            await pilot.pause()
            assert conversation.scroll_y == conversation.max_scroll_y
            await pilot.press(*"hi", "home")  # in the text: the line's start
            await pilot.pause()
            assert conversation.scroll_y == conversation.max_scroll_y
            assert app.chat.composer.cursor_location == (0, 0)

    async def test_page_up_at_the_top_shows_earlier_messages(
        self, app_factory, provider_env, seed, today
    ):
        seed(today, *[("user", f"message number {i}") for i in range(40)])
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            conversation = app.chat.conversation
            await wait_until(pilot, lambda: len(conversation.views) == 24)
            for _ in range(12):
                await pilot.press("pageup")
                await pilot.pause()
                if len(conversation.views) == 40:
                    break
            assert len(conversation.views) == 40

    async def test_backspace_in_an_empty_composer_removes_the_image(
        self, app_factory, provider_env, grizz_home, today
    ):
        from grizz_tui.tui.screens.attach import AttachScreen
        from tests.tui.helpers import type_and_send, wait_reply_done

        image = grizz_home / "dot.png"
        image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 32)
        provider_env.enqueue(Text("Just words."))
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            await pilot.press("ctrl+o")
            await wait_until(pilot, lambda: isinstance(app.screen, AttachScreen))
            app.screen.query_one("#path").value = str(image)
            await pilot.press("enter")
            await wait_until(pilot, lambda: app.chat.pending, what="attachment")
            await wait_shown(pilot, "Backspace in an empty box removes")
            await pilot.press("backspace")
            await wait_until(pilot, lambda: not app.chat.pending)
            assert any("Removed dot.png" in n.message for n in app._notifications)
            await type_and_send(pilot, "no picture after all")
            await wait_reply_done(pilot)
            content = provider_env.requests[0]["messages"][-1]["content"]
            assert content == "no picture after all"


class TestEditFocused:
    async def test_e_edits_the_focused_message_not_only_the_last(
        self, app_factory, provider_env, seed, today
    ):
        from tests.tui.helpers import shown, wait_reply_done

        seed(
            today,
            ("user", "first question"),
            ("assistant", "first answer"),
            ("user", "second question"),
            ("assistant", "second answer"),
        )
        provider_env.enqueue(Text("A better answer."))
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            views = app.chat.conversation.views
            await wait_until(pilot, lambda: len(app.chat.conversation.views) == 4)
            views = app.chat.conversation.views
            views[1].focus()
            await pilot.press("e")
            await pilot.pause()
            assert app.chat.editing is None
            assert any("own messages" in n.message for n in app._notifications)
            views[0].focus()
            await pilot.press("e")
            await pilot.pause()
            assert app.chat.composer.text == "first question"
            await wait_shown(pilot, "replacing the 3 messages after it")
            await pilot.press(*" (better)", "enter")
            await wait_reply_done(pilot)
            assert [s[2] for s in shown(app)] == [
                "first question (better)",
                "A better answer.",
            ]
