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
