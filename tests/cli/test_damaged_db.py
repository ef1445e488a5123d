"""A damaged database (valid header, damaged pages) is one line in every
command, with nothing written and no traceback (issue 13: `grizz ask` printed
a traceback after writing into it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from grizz_tui.cli import app
from tests.fakes.damaged_db import make_damaged_db
from tests.fakes.openai_server import FakeOpenAI


@pytest.mark.parametrize(
    "command",
    [
        ["ask", "hello"],
        ["history"],
        ["search", "message"],
        ["memory", "list"],
        ["memory", "add", "likes tea"],
        ["export", "-d", "2026-11-15"],
    ],
)
def test_one_line_and_nothing_written(
    command: list[str],
    grizz_home: Path,
    provider_env: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = grizz_home / "damaged.db"
    damaged = make_damaged_db(path)
    monkeypatch.setenv("GRIZZ_DB", str(path))
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a usable Grizz database" in lines[0]
    assert "damaged" in lines[0]
    assert isinstance(result.exception, SystemExit)  # not a traceback
    assert provider_env.requests == []
    assert path.read_bytes() == damaged


def test_commands_check_daily_and_damage_between_checks_is_one_line(
    grizz_home: Path, provider_env: FakeOpenAI
) -> None:
    """A full page check costs ~0.4 s on years of history, so commands run it
    once a day; damage that appears after a check passed is still one line
    (from the entry point), never a traceback."""
    import os
    import subprocess
    import sys

    path = grizz_home / "damaged.db"
    damaged = make_damaged_db(path)
    marker = path.with_name(path.name + ".checked")
    env = {**os.environ, "GRIZZ_DB": str(path)}
    run = [sys.executable, "-m", "grizz_tui", "history", "-d", "2026-11-15"]
    first = subprocess.run(run, env=env, capture_output=True, text=True, timeout=60)
    assert first.returncode == 1 and "damaged" in first.stderr
    assert not marker.exists()  # a failed check is not remembered
    marker.write_text(str(path.stat().st_ino))  # as if a check had just passed
    later = subprocess.run(run, env=env, capture_output=True, text=True, timeout=60)
    assert later.returncode == 1, later.stderr
    lines = later.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a usable Grizz database" in lines[0]
    assert "Traceback" not in later.stderr
    assert path.read_bytes() == damaged
