"""`grizz-server users …` / `tokens …` (admin.py) through Typer's CliRunner.

Exit codes, stdout and stderr are checked separately; the token appears on
stdout exactly once and nowhere else.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from grizz_server.admin import tokens_app, users_app
from grizz_server.store import ServerStore

cli = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
cli.add_typer(users_app, name="users")
cli.add_typer(tokens_app, name="tokens")


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def authenticate(url: str, token: str) -> str | None:
    async def go() -> str | None:
        store = await ServerStore.open(url)
        try:
            found = await store.authenticate(token)
            return found.user_name if found else None
        finally:
            await store.close()

    return asyncio.run(go())


def test_users_and_tokens_lifecycle(store_url: str) -> None:
    added = run("users", "add", "alice", "--db-url", store_url)
    assert added.exit_code == 0, added.stderr
    assert added.stdout.startswith("Added user alice (id ")
    assert run("users", "add", "bob", "--db-url", store_url).exit_code == 0

    listed = run("users", "list", "--db-url", store_url, "--json")
    assert [u["name"] for u in json.loads(listed.stdout)] == ["alice", "bob"]

    issued = run("tokens", "add", "alice", "--device", "laptop", "--db-url", store_url)
    assert issued.exit_code == 0, issued.stderr
    token = issued.stdout.strip()
    assert token.startswith("grz_") and "\n" not in token
    assert token not in issued.stderr and "shown only this once" in issued.stderr
    assert authenticate(store_url, token) == "alice"

    tokens = run("tokens", "list", "alice", "--db-url", store_url)
    assert tokens.exit_code == 0 and "laptop" in tokens.stdout
    assert token not in tokens.stdout and "REVOKED" not in tokens.stdout
    token_id = tokens.stdout.split()[0]

    revoked = run("tokens", "revoke", token_id[:6], "--db-url", store_url)
    assert revoked.exit_code == 0 and f"Revoked token {token_id[:6]}" in revoked.stdout
    assert authenticate(store_url, token) is None
    assert "REVOKED" in run("tokens", "list", "alice", "--db-url", store_url).stdout
    listed_json = json.loads(
        run("tokens", "list", "alice", "--db-url", store_url, "--json").stdout
    )
    assert listed_json[0]["revoked"] is True and "token" not in json.dumps(listed_json)


def test_errors_are_one_line(store_url: str) -> None:
    run("users", "add", "alice", "--db-url", store_url)
    cases = [
        (("users", "add", "alice"), 2, "already exists"),
        (("users", "add", "no good"), 2, "not a valid user name"),
        (("tokens", "add", "ghost", "--device", "x"), 2, "no user named 'ghost'"),
        (("tokens", "add", "alice", "--device", ""), 2, "device name"),
        (("tokens", "list", "ghost"), 2, "no user named 'ghost'"),
        (("tokens", "revoke", "abcdef"), 1, "No token with id 'abcdef'"),
    ]
    for args, code, text in cases:
        result = run(*args, "--db-url", store_url)
        assert result.exit_code == code, (args, result.stdout, result.stderr)
        assert text in result.stderr and result.stderr.startswith("grizz-server: ")
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert result.stdout == ""


def test_revoke_never_echoes_a_token(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    run("users", "add", "alice", "--db-url", url)
    token = run(
        "tokens", "add", "alice", "--device", "d", "--db-url", url
    ).stdout.strip()
    result = run("tokens", "revoke", token, "--db-url", url)
    assert result.exit_code == 2 and "looks like a token" in result.stderr
    assert token not in result.stderr + result.stdout
    assert authenticate(url, token) == "alice"


def test_default_db_url_is_under_grizz_home(grizz_home: Path) -> None:
    assert run("users", "add", "alice").exit_code == 0
    assert (grizz_home / "server.db").is_file()
    assert run("users", "list").stdout.startswith("alice  ")


def test_empty_lists_say_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    empty = run("users", "list", "--db-url", url)
    assert (
        empty.exit_code == 0 and empty.stdout == "" and "No users yet" in empty.stderr
    )
    run("users", "add", "alice", "--db-url", url)
    none = run("tokens", "list", "alice", "--db-url", url)
    assert none.exit_code == 0 and "no device tokens" in none.stderr


@pytest.mark.parametrize(
    ("url", "text"),
    [
        ("mysql://x@y/db", "Unsupported database URL"),
        ("sqlite:////nonexistent-dir/x/server.db", "directory does not exist"),
    ],
)
def test_bad_database_urls(url: str, text: str) -> None:
    result = run("users", "list", "--db-url", url)
    assert result.exit_code == 1 and text in result.stderr
    assert "Traceback" not in result.stderr


def test_broken_database_file(tmp_path: Path) -> None:
    bad = tmp_path / "server.db"
    bad.write_text("not a database\n" * 200)
    result = run("users", "list", "--db-url", f"sqlite:///{bad}")
    assert (
        result.exit_code == 1 and "not a usable grizz-server database" in result.stderr
    )
    assert bad.read_text() == "not a database\n" * 200


def test_in_a_real_process(tmp_path: Path) -> None:
    """The apps run as a process too, with no traceback for an expected failure."""
    code = (
        "import typer, sys; from grizz_server.admin import users_app; "
        "app = typer.Typer(); app.add_typer(users_app, name='users'); "
        "sys.argv = ['x', 'users', 'add', 'b/ad', '--db-url', sys.argv[1]]; app()"
    )
    url = f"sqlite:///{tmp_path / 's.db'}"
    proc = subprocess.run(
        [sys.executable, "-c", code, url], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("grizz-server: 'b/ad' is not a valid user name")
    assert "Traceback" not in proc.stderr
