"""First-run setup: choose a provider, test it, save it; reachable later."""

from __future__ import annotations

import tomllib

import pytest

from grizz_core import paths
from grizz_tui import secrets
from grizz_tui.tui.screens.setup import SetupScreen
from tests.fakes.openai_server import Text
from tests.tui.helpers import (
    screen_text,
    shown,
    type_and_send,
    wait_ready,
    wait_reply_done,
    wait_shown,
    wait_until,
)


@pytest.fixture
def no_provider(monkeypatch):
    """A hosted API without a key, and no fallback to the built-in model."""
    monkeypatch.setenv("GRIZZ_PROVIDER", "openai")


def config_file() -> dict:
    return tomllib.loads(paths.config_file().read_text())


async def open_setup(pilot) -> SetupScreen:
    app = await wait_ready(pilot)
    await wait_until(pilot, lambda: isinstance(app.screen, SetupScreen), what="setup")
    await pilot.pause()
    return app.screen


class TestFirstRun:
    async def test_setup_opens_instead_of_failing(self, app_factory, no_provider):
        app = app_factory()
        async with app.run_test(size=(100, 40)) as pilot:
            await open_setup(pilot)
            await wait_shown(pilot, "where my thoughts come from")

    async def test_compatible_server_test_and_save_then_chat(
        self, app_factory, no_provider, fake_openai, today
    ):
        fake_openai.enqueue(Text("pong"), Text("Hi, I'm set up!"))
        app = app_factory()
        async with app.run_test(size=(100, 40)) as pilot:
            setup = await open_setup(pilot)
            await pilot.click("#compatible")
            setup.query_one("#base-url").value = fake_openai.base_url
            setup.query_one("#model").value = "fake-model"
            await pilot.click("#test")
            await wait_until(
                pilot, lambda: "Connected" in _result(setup), what="test result"
            )
            assert "Connected: fake-model answered." in _result(setup)
            assert not paths.config_file().exists()
            await pilot.click("#save")
            await wait_until(pilot, lambda: not isinstance(app.screen, SetupScreen))
            saved = config_file()
            assert saved["base_url"] == fake_openai.base_url
            assert saved["model"] == "fake-model"
            await wait_until(
                pilot, lambda: "fake-model @ 127.0.0.1" in screen_text(app)
            )
            await type_and_send(pilot, "hello")
            await wait_reply_done(pilot)
            assert shown(app)[-1] == ("assistant", "complete", "Hi, I'm set up!")
        assert fake_openai.requests[0]["max_tokens"] == 1

    async def test_openai_key_is_stored_with_secrets(self, app_factory, no_provider):
        app = app_factory()
        async with app.run_test(size=(100, 40)) as pilot:
            setup = await open_setup(pilot)
            await pilot.click("#openai")
            setup.query_one("#key").value = "sk-from-setup"
            setup.query_one("#model").value = "gpt-4o-mini"
            await pilot.click("#save")
            await wait_until(pilot, lambda: not isinstance(app.screen, SetupScreen))
            assert secrets.get_key("openai").value == "sk-from-setup"
            assert config_file()["provider"] == "openai"
            assert not app.backend.needs_setup()
            assert "sk-from-setup" not in paths.config_file().read_text()

    async def test_openai_without_key_is_refused(self, app_factory, no_provider):
        app = app_factory()
        async with app.run_test(size=(100, 40)) as pilot:
            setup = await open_setup(pilot)
            await pilot.click("#openai")
            await pilot.click("#save")
            assert "needs an API key" in _result(setup)
            assert isinstance(app.screen, SetupScreen)
            assert not paths.config_file().exists()

    async def test_failed_test_says_why_and_saves_nothing(
        self, app_factory, no_provider
    ):
        app = app_factory()
        async with app.run_test(size=(100, 40)) as pilot:
            setup = await open_setup(pilot)
            await pilot.click("#compatible")
            setup.query_one("#base-url").value = "http://127.0.0.1:9/v1"
            setup.query_one("#model").value = "llama3.2"
            await pilot.click("#test")
            await wait_until(pilot, lambda: "✗" in _result(setup), what="failure")
            assert "Could not reach http://127.0.0.1:9/v1" in _result(setup)
            assert not paths.config_file().exists()

    async def test_bad_url_is_a_one_line_error(self, app_factory, no_provider):
        app = app_factory()
        async with app.run_test(size=(100, 40)) as pilot:
            setup = await open_setup(pilot)
            await pilot.click("#compatible")
            setup.query_one("#base-url").value = "localhost:11434"
            await pilot.click("#save")
            assert "must start with http://" in _result(setup)

    async def test_later_returns_to_chat_and_sending_reopens_setup(
        self, app_factory, no_provider, fake_openai, today
    ):
        app = app_factory()
        async with app.run_test(size=(100, 40)) as pilot:
            await open_setup(pilot)
            await pilot.click("#later")
            await wait_until(pilot, lambda: not isinstance(app.screen, SetupScreen))
            await type_and_send(pilot, "hello anyway")
            await wait_until(
                pilot, lambda: isinstance(app.screen, SetupScreen), what="setup"
            )
            from tests.tui.helpers import live_messages

            assert [m.content for m in live_messages(app, today)] == ["hello anyway"]
            await pilot.pause()
            setup = app.screen
            await pilot.click("#compatible")
            setup.query_one("#base-url").value = fake_openai.base_url
            setup.query_one("#model").value = "fake-model"
            await pilot.click("#save")
            await wait_until(pilot, lambda: not isinstance(app.screen, SetupScreen))
            await wait_until(
                pilot, lambda: any("Ctrl+R" in n.message for n in app._notifications)
            )
            fake_openai.enqueue(Text("Now I can answer!"))
            await pilot.press("ctrl+r")
            await wait_until(pilot, lambda: fake_openai.requests, what="request")
            await wait_reply_done(pilot)
            assert [s[2] for s in shown(app)] == ["hello anyway", "Now I can answer!"]


class TestLater:
    async def test_settings_key_opens_setup(self, app_factory, provider_env):
        app = app_factory()
        async with app.run_test(size=(100, 40)) as pilot:
            await wait_ready(pilot)
            assert not isinstance(app.screen, SetupScreen)
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: isinstance(app.screen, SetupScreen))
            assert app.screen.query_one("#model").value == "fake-model"
            await pilot.press("escape")
            assert not isinstance(app.screen, SetupScreen)


def _result(setup: SetupScreen) -> str:
    return str(setup.query_one("#setup-result").render())
