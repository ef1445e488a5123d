"""Key lookup order and the owner-only file fallback."""

from __future__ import annotations

import stat

import pytest

from grizz_core import paths
from grizz_tui import secrets


def test_file_fallback_is_owner_only_and_announced() -> None:
    source, notice = secrets.set_key("openai", "sk-file-key\n")
    assert source == "file"
    assert "No OS keyring" in notice and "sk-file-key" not in notice
    mode = stat.S_IMODE(paths.secrets_file().stat().st_mode)
    assert mode == 0o600
    found = secrets.get_key("openai")
    assert found is not None and found.value == "sk-file-key" and found.source == "file"
    assert "sk-file-key" not in repr(found)


def test_environment_wins_over_stored_key(monkeypatch: pytest.MonkeyPatch) -> None:
    secrets.set_key("openai", "stored")
    monkeypatch.setenv("OPENAI_API_KEY", "from-env")
    found = secrets.get_key("openai")
    assert (
        found is not None
        and found.value == "from-env"
        and found.where == "$OPENAI_API_KEY"
    )


def test_named_keys_and_delete() -> None:
    secrets.set_key("ollama", "k1")
    assert secrets.get_key("openai") is None
    assert secrets.delete_key("ollama") is True
    assert secrets.get_key("ollama") is None
    assert secrets.delete_key("ollama") is False


def test_stored_file_key_is_found_without_loading_keyring(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import subprocess
    import sys

    secrets.set_key("openai", "sk-in-file")
    monkeypatch.delenv("GRIZZ_NO_KEYRING")
    probe = (
        "import sys\n"
        "from grizz_tui import secrets\n"
        "found = secrets.get_key('openai')\n"
        "print(found.source, 'keyring' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.split() == ["file", "False"], done.stderr
