"""Settings precedence, validation and the config file."""

from __future__ import annotations

from pathlib import Path

import pytest

from grizz_core import paths
from grizz_core.errors import ConfigError
from grizz_tui import config


def test_defaults_when_nothing_is_set() -> None:
    settings = config.load_settings()
    assert settings.model == "gpt-4o-mini"
    assert settings.base_url == config.DEFAULT_BASE_URL
    assert settings.sources["model"] == "default"


def test_precedence_flag_over_env_over_file(monkeypatch: pytest.MonkeyPatch) -> None:
    config.set_value("model", "from-file")
    assert config.load_settings().model == "from-file"
    monkeypatch.setenv("GRIZZ_MODEL", "from-env")
    assert config.load_settings().model == "from-env"
    settings = config.load_settings({"model": "from-flag"})
    assert settings.model == "from-flag"
    assert settings.sources["model"] == "flag"


def test_grizz_env_beats_openai_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://openai-env/v1")
    assert config.load_settings().base_url == "http://openai-env/v1"
    monkeypatch.setenv("GRIZZ_BASE_URL", "http://grizz-env/v1")
    assert config.load_settings().base_url == "http://grizz-env/v1"


def test_nested_keys_live_in_tables_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    config.set_value("tui.theme", "nord")
    text = paths.config_file().read_text()
    assert "[tui]" in text and 'theme = "nord"' in text
    monkeypatch.setenv("GRIZZ_TUI__THEME", "gruvbox")
    assert config.load_settings().tui_theme == "gruvbox"


def test_typed_values_are_validated() -> None:
    assert config.set_value("context_tokens", "1234") == 1234
    assert config.set_value("tools", "off") is False
    with pytest.raises(ConfigError, match="must be an int"):
        config.set_value("context_tokens", "lots")
    with pytest.raises(ConfigError, match="Unknown setting"):
        config.set_value("no.such", "1")


def test_corrupt_config_file_is_one_clear_error(grizz_home: Path) -> None:
    paths.config_file().write_text("model = [unclosed\n")
    with pytest.raises(ConfigError) as info:
        config.load_settings()
    assert "not valid TOML" in str(info.value)
    assert "\n" not in str(info.value)


def test_wrong_type_in_file_names_the_key() -> None:
    paths.config_file().write_text('timeout = "soon"\n')
    with pytest.raises(ConfigError, match="'timeout'"):
        config.load_settings()


def test_unknown_key_in_file_is_a_warning_not_an_error() -> None:
    paths.config_file().write_text('colour = "blue"\nmodel = "m"\n')
    settings = config.load_settings()
    assert settings.model == "m"
    assert any("colour" in w for w in settings.warnings)


def test_unset_returns_to_default() -> None:
    config.set_value("model", "x")
    config.unset_value("model")
    assert config.load_settings().model == "gpt-4o-mini"


def test_grizz_home_relocates_everything(grizz_home: Path) -> None:
    assert paths.config_file().parent == grizz_home
    assert paths.db_path().parent == grizz_home
    assert paths.secrets_file().parent == grizz_home
