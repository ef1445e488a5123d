"""Malformed Redis and database URLs: one sentence, exit 3, no password shown."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.server.harness import run_cli as _cli


def _one_line(result: subprocess.CompletedProcess[str], *texts: str) -> None:
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("grizz-server: ")
    for text in texts:
        assert text in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("url", "text"),
    [
        ("redis://127.0.0.1:notaport/0", "port 'notaport'"),
        ("http://foo", "scheme 'http://'"),
        ("redis://127.0.0.1:99999/0", "port '99999'"),
        ("redis://127.0.0.1:-5/0", "port '-5'"),
        ("redis://[::1/0", "IPv6 host '[::1'"),
        ("redis://:hunter2@127.0.0.1/abc", "database 'abc'"),
    ],
)
def test_bad_redis_url(grizz_home: Path, url: str, text: str) -> None:
    for args in (["run"], ["check"], ["dlq", "list"]):
        result = _cli(*args, env={"REDIS_URL": url})
        _one_line(result, text, "$REDIS_URL")
        assert "hunter2" not in result.stderr
    _one_line(_cli("check", "--redis-url", url), text, "--redis-url")
    assert not (grizz_home / "server").exists()  # nothing started, nothing written


@pytest.mark.parametrize(
    ("url", "text"),
    [
        ("postgresql://postgres@127.0.0.1:notaport/test", "port 'notaport'"),
        ("postgresql://postgres@127.0.0.1:99999/test", "port '99999'"),
        ("postgresql://postgres@[::1/test", "IPv6 host '[::1'"),
        ("postgresql://postgres:hunter2@127.0.0.1:x/test", "port 'x'"),
    ],
)
def test_bad_database_url(grizz_home: Path, url: str, text: str) -> None:
    for args in (["users", "add", "zed"], ["run"], ["check"]):
        result = _cli(*args, "--db-url", url)
        _one_line(result, text)
        assert "hunter2" not in result.stderr
    _one_line(_cli("users", "list", env={"GRIZZ_SERVER_DB_URL": url}), text)
