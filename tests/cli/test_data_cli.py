"""`grizz memory|history|search|export|import|config|key` from the shell."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from grizz_core import paths
from grizz_tui.cli import app
from tests.fakes.openai_server import FakeOpenAI, Text


def grizz(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), input=input)


def test_memory_lifecycle() -> None:
    added = grizz("memory", "add", "--title", "pet", "Has a dog called Biscuit")
    assert added.exit_code == 0
    note_id = added.stdout.strip()
    assert len(note_id) == 8
    listed = grizz("memory", "list")
    assert f"{note_id}  pet: Has a dog called Biscuit" in listed.stdout
    assert grizz("memory", "search", "biscuit").stdout.startswith(note_id)
    edited = grizz("memory", "edit", note_id, "Has two dogs")
    assert edited.exit_code == 0 and "Has two dogs" in edited.stdout
    assert grizz("memory", "rm", note_id).exit_code == 0
    assert grizz("memory", "list").stdout == ""
    missing = grizz("memory", "rm", note_id)
    assert missing.exit_code == 1 and "no note" in missing.stderr


def test_memory_add_empty_is_usage_error() -> None:
    result = grizz("memory", "add", "  ")
    assert result.exit_code == 2


def test_history_search_export_import(provider_env: FakeOpenAI, tmp_path: Path) -> None:
    provider_env.enqueue(Text("Kayaking sounds lovely!"))
    assert grizz("ask", "I went kayaking today").exit_code == 0
    days = grizz("history")
    assert days.exit_code == 0 and "2 messages  I went kayaking today" in days.stdout
    day = days.stdout.split()[0]
    shown = grizz("history", "--day", "today")
    assert "Kayaking sounds lovely!" in shown.stdout
    assert grizz("history", "--day", "yesterday").exit_code == 1
    assert grizz("history", "--day", "someday").exit_code == 2
    found = grizz("search", "kayak")
    assert found.exit_code == 0 and day in found.stdout
    assert grizz("search", "zebra").exit_code == 1

    md = grizz("export", "--format", "md")
    assert md.stdout.startswith(f"# {day}") and "**Grizz**" in md.stdout
    out = tmp_path / "export.json"
    assert grizz("export", "--format", "json", "-o", str(out)).exit_code == 0
    data = json.loads(out.read_text())
    assert data["format"] == "grizz-export" and len(data["conversations"]) == 1

    paths.db_path().unlink()
    imported = grizz("import", str(out))
    assert imported.exit_code == 0 and "1 day, 2 messages" in imported.stdout
    assert "Kayaking sounds lovely!" in grizz("history", "--day", day).stdout


def test_import_rejects_non_exports(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": 1}')
    result = grizz("import", str(bad))
    assert result.exit_code == 2 and "not a Grizz JSON export" in result.stderr
    bad.write_text("{not json")
    assert grizz("import", str(bad)).exit_code == 2
    assert grizz("import", str(tmp_path / "missing.json")).exit_code == 2


def test_config_commands() -> None:
    assert (
        grizz("config", "set", "model", "llama3.2").stdout.strip() == "model = llama3.2"
    )
    assert grizz("config", "get", "model").stdout.strip() == "llama3.2"
    every = grizz("config", "get").stdout
    assert "model = llama3.2  (file)" in every and "base_url = " in every
    bad = grizz("config", "set", "timeout", "later")
    assert bad.exit_code == 3 and "must be a float" in bad.stderr
    assert str(paths.config_file()) in grizz("config", "path").stdout


def test_key_set_from_stdin_never_prints_it() -> None:
    result = grizz("key", "set", input="sk-secret-123\n")
    assert result.exit_code == 0
    assert "sk-secret-123" not in result.stdout + result.stderr
    status = grizz("key", "status")
    assert "secrets.toml" in status.stdout and "sk-secret" not in status.stdout
    assert grizz("key", "rm").exit_code == 0
    assert grizz("key", "status").exit_code == 1
