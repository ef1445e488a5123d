"""Choosing a model: the palette and setup list the endpoint's models
(`GET /v1/models`), and the choice is saved (`config set model`)."""

from __future__ import annotations

import tomllib

import pytest
from textual.widgets import OptionList

from grizz_core import paths
from grizz_tui.tui.screens.models import ModelScreen
from grizz_tui.tui.screens.setup import SetupScreen
from tests.tui.helpers import screen_text, wait_ready, wait_until


@pytest.fixture
def endpoint(provider_env, monkeypatch):
    """The fake endpoint with three models; the model comes from no env var."""
    monkeypatch.delenv("GRIZZ_MODEL")
    provider_env.models = ["fake-model", "qwen2.5:7b", "llama3.2"]
    return provider_env


def saved_model() -> str:
    return tomllib.loads(paths.config_file().read_text())["model"]


async def open_models_from_palette(pilot):
    app = await wait_ready(pilot)
    await pilot.press("ctrl+p")
    await pilot.pause()
    await pilot.press(*"Choose model")
    await pilot.pause(0.3)
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(app.screen, ModelScreen), what="models")
    return app


class TestPalette:
    async def test_lists_the_models_and_saves_the_choice(self, app_factory, endpoint):
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            app = await open_models_from_palette(pilot)
            listing = app.screen.query_one("#models", OptionList)
            await wait_until(pilot, lambda: listing.option_count == 3, what="list")
            assert "llama3.2" in screen_text(app) and "qwen2.5:7b" in screen_text(app)
            listing.highlighted = 1  # sorted: fake-model, llama3.2, qwen2.5:7b
            await pilot.press("enter")
            await wait_until(pilot, lambda: app.settings.model == "llama3.2")
            assert saved_model() == "llama3.2"
            await wait_until(pilot, lambda: "llama3.2 @ 127.0.0.1" in screen_text(app))

    async def test_an_endpoint_without_a_list_says_so(self, app_factory, endpoint):
        endpoint.models = None
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            app = await open_models_from_palette(pilot)
            await wait_until(
                pilot, lambda: "does not list its models" in screen_text(app)
            )
            await pilot.press("escape")
            await wait_until(pilot, lambda: not isinstance(app.screen, ModelScreen))
            assert not paths.config_file().exists()


class TestSetup:
    async def test_ctrl_l_lists_models_and_save_keeps_the_choice(
        self, app_factory, endpoint
    ):
        app = app_factory()
        async with app.run_test(size=(100, 40)) as pilot:
            await wait_ready(pilot)
            app.open_setup(first_run=False)
            await wait_until(pilot, lambda: isinstance(app.screen, SetupScreen))
            await pilot.pause()
            setup = app.screen
            await pilot.click("#compatible")
            setup.query_one("#base-url").value = endpoint.base_url
            setup.query_one("#model").value = ""
            await pilot.press("ctrl+l")
            listing = setup.query_one("#model-list", OptionList)
            await wait_until(pilot, lambda: listing.option_count == 3, what="list")
            assert listing.display
            listing.focus()
            listing.highlighted = 2
            await pilot.press("enter")
            assert setup.query_one("#model").value == "qwen2.5:7b"
            await pilot.click("#save")
            await wait_until(pilot, lambda: not isinstance(app.screen, SetupScreen))
            assert saved_model() == "qwen2.5:7b"
