"""Malformed Redis and database URLs: one sentence, exit 3, no password shown.

Every malformed URL is checked in this process, against each function a
command reaches it through: `load_server_settings` (`run`, `check`, `dlq`,
from `$REDIS_URL`, `$GRIZZ_SERVER_DB_URL` or a flag) and `ServerStore.open`
(the `users` and `tokens` commands). One real `grizz-server` process per
command and source then shows that the one line reaches stderr with exit 3.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from grizz_core.errors import ConfigError, GrizzError
from grizz_server.settings import (
    ServerSettings,
    check_url,
    load_server_settings,
    url_problem,
)
from grizz_server.store import ServerStore, default_db_url
from tests.server.harness import run_cli as _cli

BAD_REDIS_URLS = [
    ("redis://127.0.0.1:notaport/0", "port 'notaport'"),
    ("http://foo", "scheme 'http://'"),
    ("redis://127.0.0.1:99999/0", "port '99999'"),
    ("redis://127.0.0.1:-5/0", "port '-5'"),
    ("redis://[::1/0", "IPv6 host '[::1'"),
    ("redis://:hunter2@127.0.0.1/abc", "database 'abc'"),
]
BAD_DB_URLS = [
    ("postgresql://postgres@127.0.0.1:notaport/test", "port 'notaport'"),
    ("postgresql://postgres@127.0.0.1:99999/test", "port '99999'"),
    ("postgresql://postgres@[::1/test", "IPv6 host '[::1'"),
    ("postgresql://postgres:hunter2@127.0.0.1:x/test", "port 'x'"),
]


def _one_sentence(exc: GrizzError, *texts: str) -> None:
    """What the CLI prints as `grizz-server: {exc}`: one line, exit 3, no password."""
    message = str(exc)
    assert exc.exit_code == 3, message
    assert "\n" not in message and "Traceback" not in message
    assert "hunter2" not in message
    for text in texts:
        assert text in message, message


def _load(
    tmp_path: Path, env: dict[str, str], overrides: dict[str, str] | None = None
) -> ServerSettings:
    """Settings from flags and an environment mapping, with no TOML file."""
    return load_server_settings(overrides, env=env, path=tmp_path / "absent.toml")


@pytest.mark.parametrize(("url", "text"), BAD_REDIS_URLS)
def test_bad_redis_url_from_the_environment_or_a_flag(
    tmp_path: Path, url: str, text: str
) -> None:
    with pytest.raises(ConfigError) as from_env:
        _load(tmp_path, env={"REDIS_URL": url})
    _one_sentence(from_env.value, text, "$REDIS_URL")
    with pytest.raises(ConfigError) as from_flag:
        _load(tmp_path, overrides={"redis_url": url}, env={})
    _one_sentence(from_flag.value, text, "--redis-url")


@pytest.mark.parametrize(("url", "text"), BAD_DB_URLS)
async def test_bad_database_url_from_a_flag_the_environment_or_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, text: str
) -> None:
    with pytest.raises(ConfigError) as from_flag:  # run, check: --db-url
        _load(tmp_path, overrides={"db_url": url}, env={})
    _one_sentence(from_flag.value, text, "--db-url")
    with pytest.raises(ConfigError) as from_env:
        _load(tmp_path, env={"GRIZZ_SERVER_DB_URL": url})
    _one_sentence(from_env.value, text, "$GRIZZ_SERVER_DB_URL")
    # users, tokens: --db-url, else $GRIZZ_SERVER_DB_URL, opened as the store
    monkeypatch.setenv("GRIZZ_SERVER_DB_URL", url)
    assert default_db_url() == url
    with pytest.raises(ConfigError) as from_store:
        await ServerStore.open(url, pool_size=1)
    _one_sentence(from_store.value, text)


@pytest.mark.parametrize(
    ("url", "schemes", "problem"),
    [
        ("redis://127.0.0.1:6379/0", ("redis",), None),
        ("redis://[::1]:6379/0", ("redis",), None),
        ("unix:///tmp/redis.sock", ("redis", "unix"), None),
        ("sqlite:///server.db", (), None),
        ("not a url", (), None),
        ("not a url", ("redis",), "it does not start with scheme://"),
        ("redis://[::1]x/0", ("redis",), "'x' after its IPv6 host is not ':port'"),
        ("redis://127.0.0.1:0/0", ("redis",), "its port '0' is not a number"),
        ("redis://host:/0", ("redis",), "its port '' is not a number"),
    ],
)
def test_url_problem(url: str, schemes: tuple[str, ...], problem: str | None) -> None:
    found = url_problem(url, schemes=schemes)
    if problem is None:
        assert found is None
    else:
        assert found is not None and found.startswith(problem), found


def test_check_url_masks_the_password() -> None:
    with pytest.raises(ConfigError) as caught:
        check_url("redis://me:hunter2@[::1/0", "The Redis URL", schemes=("redis",))
    assert str(caught.value) == (
        "The Redis URL 'redis://me:***@[::1/0' is not usable: its IPv6 host "
        "'[::1' has no closing ']'."
    )


# -- the same errors through a real grizz-server process, once per path -------


def _one_line(result: subprocess.CompletedProcess[str], *texts: str) -> None:
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("grizz-server: ")
    assert "hunter2" not in result.stderr
    for text in texts:
        assert text in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("args", "url", "text"),
    [
        (["run"], "redis://:hunter2@127.0.0.1/abc", "database 'abc'"),
        (["check"], "http://foo", "scheme 'http://'"),
        (["dlq", "list"], "redis://127.0.0.1:notaport/0", "port 'notaport'"),
    ],
)
def test_bad_redis_url_in_the_environment(
    grizz_home: Path, args: list[str], url: str, text: str
) -> None:
    _one_line(_cli(*args, env={"REDIS_URL": url}), text, "$REDIS_URL")
    assert not (grizz_home / "server").exists()  # nothing started, nothing written


def test_bad_redis_url_flag(grizz_home: Path) -> None:
    result = _cli("check", "--redis-url", "redis://[::1/0")
    _one_line(result, "IPv6 host '[::1'", "--redis-url")
    assert not (grizz_home / "server").exists()


@pytest.mark.parametrize(
    ("args", "url", "text"),
    [
        (
            ["users", "add", "zed"],
            "postgresql://postgres:hunter2@127.0.0.1:x/test",
            "port 'x'",
        ),
        (["run"], "postgresql://postgres@127.0.0.1:notaport/test", "port 'notaport'"),
        (["check"], "postgresql://postgres@[::1/test", "IPv6 host '[::1'"),
    ],
)
def test_bad_database_url_flag(args: list[str], url: str, text: str) -> None:
    _one_line(_cli(*args, "--db-url", url), text)


def test_bad_database_url_in_the_environment() -> None:
    url = "postgresql://postgres@127.0.0.1:99999/test"
    _one_line(_cli("users", "list", env={"GRIZZ_SERVER_DB_URL": url}), "port '99999'")
