"""The server's own settings: the provider the workers call comes from
GRIZZ_SERVER_* variables and the server's TOML file, never from the terminal
client's config."""

from __future__ import annotations

from pathlib import Path

import pytest

from grizz_core import paths
from grizz_core.errors import ConfigError
from grizz_server.settings import ServerSettings, config_path, load_server_settings


def test_the_provider_comes_from_the_servers_file_and_environment(
    tmp_path: Path,
) -> None:
    path = tmp_path / "server.toml"
    path.write_text(
        'model = "llama3.2"\nbase_url = "http://127.0.0.1:11434/v1"\n'
        "lease_ms = 20000\n[local]\nn_ctx = 1024\n"
    )
    settings = load_server_settings(env={"GRIZZ_SERVER_MODEL": "qwen"}, path=path)
    assert settings.model == "qwen"  # environment beats the file
    assert settings.base_url == "http://127.0.0.1:11434/v1"
    assert settings.lease_ms == 20000
    assert settings.local_n_ctx == 1024
    assert settings.sources["model"] == "env"
    assert settings.sources["base_url"] == "file"
    flags = load_server_settings({"lease_ms": 25000}, env={}, path=path)
    assert flags.lease_ms == 25000  # a flag beats the file


def test_the_device_config_is_not_read(grizz_home: Path) -> None:
    paths.config_file().parent.mkdir(parents=True, exist_ok=True)
    paths.config_file().write_text('model = "device-model"\n')
    settings = load_server_settings(env={"GRIZZ_MODEL": "device-env-model"})
    assert settings.model == ServerSettings.model == "gpt-4o-mini"


def test_the_default_file_lives_in_the_server_directory(grizz_home: Path) -> None:
    default = load_server_settings(env={})
    assert default.model == "gpt-4o-mini"
    path = config_path({})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('model = "from-file"\n')
    assert load_server_settings(env={}).model == "from-file"
    named = grizz_home / "elsewhere.toml"
    named.write_text('model = "named"\n')
    assert load_server_settings(env={"GRIZZ_SERVER_CONFIG": str(named)}).model == (
        "named"
    )


def test_the_api_key_is_a_secret(tmp_path: Path) -> None:
    settings = load_server_settings(
        env={"OPENAI_API_KEY": "sk-hidden"}, path=tmp_path / "none.toml"
    )
    assert settings.api_key == "sk-hidden"
    assert "sk-hidden" not in repr(settings)
    own = load_server_settings(
        env={"OPENAI_API_KEY": "sk-a", "GRIZZ_SERVER_API_KEY": "sk-b"},
        path=tmp_path / "none.toml",
    )
    assert own.api_key == "sk-b"  # the server's own name wins


def test_bad_files_and_values_are_one_sentence(tmp_path: Path) -> None:
    path = tmp_path / "server.toml"
    path.write_text("lease_ms = [\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_server_settings(env={}, path=path)
    path.write_text('lease_ms = "soon"\n')
    with pytest.raises(ConfigError, match=r"'lease_ms' in .* must be int"):
        load_server_settings(env={}, path=path)
    path.write_text('provider = "anthropic"\n')
    with pytest.raises(ConfigError, match="must be one of openai, local"):
        load_server_settings(env={}, path=path)
    path.write_text("colour = 3\n")
    warned = load_server_settings(env={}, path=path)
    assert warned.warnings == (f"Ignoring unknown server setting 'colour' in {path}.",)


def test_children_resolve_what_their_parent_did(tmp_path: Path) -> None:
    none = tmp_path / "none.toml"
    parent = load_server_settings(
        {"port": 9000}, env={"GRIZZ_SERVER_MODEL": "m"}, path=none
    )
    env = parent.env()
    assert "GRIZZ_SERVER_PROVIDER" not in env  # unset stays unset (local fallback)
    child = load_server_settings(env=env, path=none)
    assert (child.port, child.model, child.provider_chosen) == (9000, "m", False)
    direct = ServerSettings(port=0, lease_ms=300, visibility_ms=600)
    assert load_server_settings(env=direct.env(), path=none).lease_ms == 300
