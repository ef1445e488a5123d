"""`grizz local info`: the catalogue, licences, and the memory report."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from grizz_tui.cli import app

pytestmark = pytest.mark.local


def test_info_lists_models_and_licences_without_loading(local_env: Path) -> None:
    result = CliRunner().invoke(app, ["local", "info"])
    assert result.exit_code == 0, result.stderr
    assert "llama-cpp-python installed" in result.stdout
    assert "qwen2.5-coder-0.5b" in result.stdout and "(installed)" in result.stdout
    assert result.stdout.count("Apache-2.0") == 2
    assert "process RSS" not in result.stdout


def test_info_load_reports_memory(local_env: Path) -> None:
    result = CliRunner().invoke(app, ["local", "info", "--load"])
    assert result.exit_code == 0, result.stderr
    lines = dict(
        line.split(":", 1) for line in result.stdout.splitlines() if ":" in line
    )
    assert lines["context"].strip() == "1024 tokens"
    assert lines["process RSS after load"].strip().endswith("MiB")
    assert int(lines["memory estimate"].split()[0]) > 469


def test_info_load_error_is_one_line(local_env: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["local", "info", "--load"],
        env={"GRIZZ_LOCAL__MODEL": str(tmp_path / "missing.gguf")},
    )
    assert result.exit_code == 3
    assert (
        result.stderr.strip()
        == f"grizz: Local model file {tmp_path / 'missing.gguf'} does not exist."
    )
