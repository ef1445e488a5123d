"""The app with the real built-in local model (the `local` extra): the model
loads in the background with its progress on screen, the reply streams and is
stored complete, and a model that cannot load is an error notice, not a crash.

Properties only: the model's text differs between llama.cpp builds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from grizz_tui.tui.messages import ModelLoading
from grizz_tui.tui.widgets.notices import ErrorNotice
from tests.local.support import use_local_model
from tests.tui.helpers import (
    live_messages,
    screen_text,
    shown,
    type_and_send,
    wait_ready,
    wait_reply_done,
    wait_until,
)

pytestmark = pytest.mark.local


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture
def local_app_env(models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """provider=local with short replies; the model is assembled once here."""
    monkeypatch.setenv("GRIZZ_PROVIDER", "local")
    return use_local_model(models_dir, monkeypatch)


async def test_local_model_loads_with_progress_and_replies(
    app_factory, local_app_env, today, capfd
):
    seen: list[object] = []
    app = app_factory()
    async with app.run_test(size=(100, 30), message_hook=seen.append) as pilot:
        await wait_ready(pilot)
        # The model loads in the background after start-up (assembled first,
        # into this module's fresh cache), its progress on screen.
        await wait_until(
            pilot,
            lambda: "🐻 Preparing the local model… " in screen_text(app),
            timeout=30,
            what="the load's progress on screen",
        )
        await type_and_send(pilot, "hi")
        await wait_until(
            pilot, lambda: app.chat.reply_worker is not None, what="the reply to start"
        )
        await wait_reply_done(pilot, timeout=60)
        assert not app.chat.query(ErrorNotice)
        (_, _, question), (role, status, reply) = shown(app)
        assert (question, role, status) == ("hi", "assistant", "complete")
        assert reply.strip()
        stored = live_messages(app, today)
        assert [(str(m.role), str(m.status)) for m in stored] == [
            ("user", "complete"),
            ("assistant", "complete"),
        ]
        assert stored[1].content == reply
        # The load's progress was on screen, and is gone once it finished.
        notes = [m.text for m in seen if isinstance(m, ModelLoading)]
        assert any(n.startswith("Loading the local model…") for n in notes)
        assert any(n.endswith("%") for n in notes)
        assert notes[-1] == ""
        assert app.chat.typing.model_note == "" and not app.chat.typing.display
    # llama.cpp's own output never reached the terminal.
    out, err = capfd.readouterr()
    assert "llama" not in out + err and "gguf" not in (out + err).lower()


async def test_corrupt_local_model_is_an_error_notice(
    app_factory, local_app_env, today, tmp_path, monkeypatch
):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x03" * 400)
    monkeypatch.setenv("GRIZZ_LOCAL__MODEL", str(broken))
    app = app_factory()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_ready(pilot)
        # The background load after start-up already reports it.
        await wait_until(pilot, lambda: app.chat.query(ErrorNotice), what="notice")
        await type_and_send(pilot, "hi")
        await wait_until(
            pilot, lambda: app.chat.reply_worker is not None, what="the reply to start"
        )
        await wait_reply_done(pilot, timeout=30)
        notice = app.chat.query_one(ErrorNotice)
        assert "is corrupt or unreadable" in notice.reason and notice.retry
        # The message is kept (Retry answers it), and the app is still running.
        assert [m.content for m in live_messages(app, today)] == ["hi"]
        assert app.is_running and app.chat.typing.model_note == ""


async def test_the_fresh_install_fallback_is_named_in_the_status_bar(
    app_factory, models_dir, monkeypatch
):
    """No key, no provider chosen: the built-in model answers, and the status
    bar says so (it named gpt-4o-mini @ api.openai.com: issue 13)."""
    use_local_model(models_dir, monkeypatch)
    monkeypatch.setenv("GRIZZ_LOCAL__FALLBACK", "1")
    app = app_factory()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_ready(pilot)
        await wait_until(
            pilot, lambda: "local · " in screen_text(app), what="the local label"
        )
        assert "api.openai.com" not in screen_text(app)
        await wait_until(
            pilot,
            lambda: (
                not app.chat.workers
                or all(w.is_finished for w in app.chat.replies.workers)
            ),
            timeout=60,
            what="the model's load",
        )
