"""Palette, help, configurable keys, themes, image attachments."""

from __future__ import annotations

import base64
import tomllib

from grizz_core import paths
from grizz_tui import config
from grizz_tui.tui.screens.attach import AttachScreen
from grizz_tui.tui.screens.help import HelpScreen
from grizz_tui.tui.screens.memory import MemoryScreen
from grizz_tui.tui.screens.search import SearchScreen
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

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


class TestPalette:
    async def test_every_chat_action_is_a_command(self, app_factory, provider_env):
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            titles = {c.title for c in app.get_system_commands(app.chat)}
            assert {
                "Stop reply",
                "Regenerate",
                "Edit last message",
                "Copy last reply",
                "Copy last code block",
                "Attach image",
                "Undo memory change",
                "Go to day",
                "Today",
                "Search",
                "Memory",
                "Settings",
                "Help",
                "Theme",
                "Quit",
            } <= titles

    async def test_palette_opens_search(self, app_factory, provider_env):
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            await pilot.press("ctrl+p")
            await pilot.pause()
            await pilot.press(*"Search")
            await pilot.pause(0.3)
            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, SearchScreen))

    async def test_palette_copies_the_last_reply(
        self, app_factory, provider_env, seed, today
    ):
        seed(today, ("user", "hi"), ("assistant", "Hello from the palette"))
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            command = next(
                c
                for c in app.get_system_commands(app.chat)
                if c.title == "Copy last reply"
            )
            command.callback()
            await pilot.pause()
            assert app.clipboard == "Hello from the palette"


class TestHelpAndKeys:
    async def test_help_lists_bindings(self, app_factory, provider_env):
        app = app_factory()
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_ready(pilot)
            await pilot.press("f1")
            await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
            await pilot.pause()
            text = screen_text(app)
            for expected in ("ctrl+j", "ctrl+r", "escape", "ctrl+f", "Regenerate"):
                assert expected in text
            await pilot.press("escape")
            assert app.screen is app.chat

    async def test_keys_come_from_the_config_file(self, app_factory, provider_env):
        paths.config_file().write_text('[tui.keys]\nsearch = "ctrl+t"\nmemory = "f9"\n')
        app = app_factory()
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_ready(pilot)
            await pilot.press("ctrl+f")
            await pilot.pause()
            assert app.screen is app.chat
            await pilot.press("ctrl+t")
            await wait_until(pilot, lambda: isinstance(app.screen, SearchScreen))
            await pilot.press("escape")
            await pilot.press("f9")
            await wait_until(pilot, lambda: isinstance(app.screen, MemoryScreen))
            rows = app.binding_rows()
            assert ("ctrl+t", "Search", "chat") in rows

    async def test_bad_key_type_in_config_is_one_line(self, grizz_home):
        from grizz_core.errors import ConfigError

        paths.config_file().write_text("[tui.keys]\nsearch = 3\n")
        try:
            config.load_settings()
        except ConfigError as exc:
            assert "tui.keys.search" in str(exc)
        else:
            raise AssertionError("expected a ConfigError")


class TestTheme:
    async def test_theme_choice_is_saved(self, app_factory, provider_env):
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            app.theme = "nord"
            await pilot.pause()
        saved = tomllib.loads(paths.config_file().read_text())
        assert saved["tui"]["theme"] == "nord"

    async def test_saved_theme_is_used(self, app_factory, provider_env):
        config.set_value("tui.theme", "gruvbox")
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            assert app.theme == "gruvbox"


class TestAttach:
    async def test_attached_image_is_sent_and_stored(
        self, app_factory, provider_env, grizz_home, today
    ):
        image = grizz_home / "dot.png"
        image.write_bytes(PNG)
        provider_env.enqueue(Text("What a tiny dot!"))
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            await pilot.press("ctrl+o")
            await wait_until(pilot, lambda: isinstance(app.screen, AttachScreen))
            app.screen.query_one("#path").value = str(image)
            await pilot.press("enter")
            await wait_until(pilot, lambda: app.chat.pending, what="attachment")
            await pilot.pause()
            await wait_shown(pilot, "📎 dot.png")
            await type_and_send(pilot, "look at this")
            await wait_reply_done(pilot)
            assert shown(app)[-1][2] == "What a tiny dot!"
            await wait_shown(pilot, "📎 dot.png")
            content = provider_env.requests[0]["messages"][-1]["content"]
            urls = [
                part["image_url"]["url"]
                for part in content
                if part["type"] == "image_url"
            ]
            assert urls == ["data:image/png;base64," + base64.b64encode(PNG).decode()]
            from grizz_tui.store.conversations import attachments_of

            user = live_messages(app, today)[0]
            assert [a.name for a in attachments_of(app.backend.db, user.id)] == [
                "dot.png"
            ]

    async def test_not_an_image_is_refused_with_a_notice(
        self, app_factory, provider_env, grizz_home
    ):
        text_file = grizz_home / "notes.txt"
        text_file.write_text("not a picture")
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            await pilot.press("ctrl+o")
            await wait_until(pilot, lambda: isinstance(app.screen, AttachScreen))
            app.screen.query_one("#path").value = str(text_file)
            await pilot.press("enter")
            await wait_until(
                pilot,
                lambda: any("not an image" in n.message for n in app._notifications),
            )
            assert app.chat.pending == []
