"""Trust: the status bar names who actually answers (issue 13: on a fresh
install answered by the built-in model it said `gpt-4o-mini @
api.openai.com`, so a user could not tell whether their words left the
machine)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from grizz_core.providers.local import models
from grizz_tui.config import load_settings
from grizz_tui.tui.app import GrizzApp
from grizz_tui.tui.backend import Backend
from tests.fakes.openai_server import FakeOpenAI
from tests.tui.helpers import screen_text, wait_ready, wait_until

needs_local = pytest.mark.skipif(
    not models.available(), reason="the `local` extra is not installed"
)


class TestProviderLabel:
    @needs_local
    def test_the_fresh_install_fallback_is_named_local(
        self, grizz_home: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("GRIZZ_LOCAL__FALLBACK", "1")  # no key: Qwen answers
        backend = Backend(load_settings())
        assert backend.uses_local_model()
        assert backend.provider_label() == f"local · {models.installed()[0].name}"

    @needs_local
    def test_the_chosen_local_model_is_named_local(
        self, grizz_home: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("GRIZZ_PROVIDER", "local")
        backend = Backend(load_settings())
        assert backend.provider_label() == f"local · {models.installed()[0].name}"
        monkeypatch.setenv("GRIZZ_LOCAL__MODEL", "/models/tiny-llama.gguf")
        assert Backend(load_settings()).provider_label() == "local · tiny-llama"

    async def test_a_hosted_endpoint_keeps_model_and_host(
        self, app_factory: Callable[..., GrizzApp], provider_env: FakeOpenAI
    ) -> None:
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            await wait_until(pilot, lambda: app.backend._provider is not None)
            assert app.backend.answers_locally is False
            assert "fake-model @ 127.0.0.1" in screen_text(app)
