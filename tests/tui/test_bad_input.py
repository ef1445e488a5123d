"""Bad input at start-up: one clear line or notice, nothing lost, no traceback."""

from __future__ import annotations

import os
import sys

from grizz_core import paths
from grizz_tui.tui.launch import run_app
from grizz_tui.tui.widgets.notices import ErrorNotice
from tests.fakes.damaged_db import make_damaged_db
from tests.tui.helpers import type_and_send, wait_until
from tests.tui.test_startup import run_in_pty


class TestBrokenDatabase:
    async def test_not_a_database_is_a_notice_and_the_file_is_untouched(
        self, app_factory, provider_env, grizz_home, monkeypatch
    ):
        broken = grizz_home / "broken.db"
        broken.write_bytes(b"this is not sqlite at all" * 100)
        monkeypatch.setenv("GRIZZ_DB", str(broken))
        before = broken.read_bytes()
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_until(pilot, lambda: app.chat.query(ErrorNotice), what="notice")
            notice = app.chat.query_one(ErrorNotice)
            assert "not a usable Grizz database" in notice.reason
            assert not notice.query("#retry")
            await type_and_send(pilot, "hello")
            await pilot.pause()
            assert any("not a usable" in n.message for n in app._notifications)
            assert provider_env.requests == []
            assert app.is_running
        assert broken.read_bytes() == before

    async def test_damaged_pages_are_a_notice_and_nothing_is_written(
        self, app_factory, provider_env, grizz_home, monkeypatch
    ):
        """Valid header, damaged pages: it opened on an empty day, and the
        first send crashed with a traceback showing the message (issue 13)."""
        damaged_path = grizz_home / "damaged.db"
        damaged = make_damaged_db(damaged_path)
        monkeypatch.setenv("GRIZZ_DB", str(damaged_path))
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_until(pilot, lambda: app.chat.query(ErrorNotice), what="notice")
            notice = app.chat.query_one(ErrorNotice)
            assert "not a usable Grizz database" in notice.reason
            assert "damaged" in notice.reason
            await type_and_send(pilot, "my secret words")
            await pilot.pause()
            assert provider_env.requests == []
            assert app.is_running
        assert damaged_path.read_bytes() == damaged

    async def test_unknown_time_zone_is_a_notice(
        self, app_factory, provider_env, monkeypatch
    ):
        monkeypatch.setenv("GRIZZ_TIMEZONE", "Mars/Olympus_Mons")
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_until(pilot, lambda: app.chat.query(ErrorNotice), what="notice")
            assert "Unknown time zone" in app.chat.query_one(ErrorNotice).reason


class TestBrokenConfig:
    def test_invalid_config_file_is_one_line_and_exit_3(self, grizz_home, capsys):
        paths.config_file().write_text("this is = = not toml")
        assert run_app() == 3
        err = capsys.readouterr().err
        assert err.startswith("grizz: Config file") and err.count("\n") == 1
        assert "Traceback" not in err

    def test_grizz_with_a_bad_config_in_a_terminal(self, grizz_home):
        paths.config_file().write_text("[tui]\ntheme = 5\n")
        code, output = run_in_pty(
            [sys.executable, "-m", "grizz_tui"], os.environ.copy()
        )
        assert code == 3
        assert b"must be a str" in output
        assert b"Traceback" not in output
