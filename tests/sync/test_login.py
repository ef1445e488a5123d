"""`grizz login`, `logout` and `status` against a real server."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable

from tests.server.conftest import Stack
from tests.sync.conftest import Home, stop_gateway


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_login_with_the_right_token_says_who_and_saves_url_and_token(
    stack: Stack, homes: Callable[[str], Home]
) -> None:
    home = homes("laptop")
    http_url = stack.url.replace("ws://", "http://")
    result = await home.grizz("login", http_url, input=stack.tokens["alice"] + "\n")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        f"Logged in to {stack.url} as alice (device alice-laptop).\n"
    )
    assert stack.tokens["alice"] not in result.stdout + result.stderr
    assert f'url = "{stack.url}"' in (home.path / "config.toml").read_text()
    assert stack.tokens["alice"] in (home.path / "secrets.toml").read_text()
    assert (home.path / "secrets.toml").stat().st_mode & 0o077 == 0


async def test_a_wrong_token_is_one_line_exit_3_and_saves_nothing(
    stack: Stack, homes: Callable[[str], Home]
) -> None:
    home = homes("laptop")
    result = await home.grizz("login", stack.url, input="grz_not-a-real-token\n")
    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "refused the device token" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (home.path / "config.toml").exists()
    assert not (home.path / "secrets.toml").exists()


async def test_an_unreachable_server_is_one_line_exit_1(
    homes: Callable[[str], Home],
) -> None:
    home = homes("laptop")
    url = f"ws://127.0.0.1:{_closed_port()}"
    result = await home.grizz("login", url, input="grz_whatever\n")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "unreachable" in result.stderr
    assert not (home.path / "config.toml").exists()


async def test_bad_urls_and_clear_text_tokens_are_refused(
    homes: Callable[[str], Home],
) -> None:
    home = homes("laptop")
    bad = await home.grizz("login", "ftp://example.com", input="grz_x\n")
    assert bad.exit_code == 2
    assert "not a server URL" in bad.stderr
    plain = await home.grizz("login", "ws://example.com:8765", input="grz_x\n")
    assert plain.exit_code == 3
    assert "unencrypted" in plain.stderr
    empty = await home.grizz("login", "ws://127.0.0.1:1", input="\n")
    assert empty.exit_code == 2


async def test_status_logout_and_status_without_a_server(
    stack: Stack, homes: Callable[[str], Home]
) -> None:
    home = homes("laptop")
    before = await home.grizz("status")
    assert before.exit_code == 0
    assert before.stdout.startswith("Not logged in")
    await home.login(stack.url, stack.tokens["alice"])
    await home.grizz("memory", "add", "likes", "honey")
    status = await home.grizz("status", "--json")
    assert status.exit_code == 0, status.stderr
    info = json.loads(status.stdout)
    assert info["logged_in"] is True
    assert info["connected"] is True
    assert (info["server"], info["user"], info["device"]) == (
        stack.url,
        "alice",
        "alice-laptop",
    )
    assert info["last_sync"] is None
    assert info["cursor"] == 0
    assert info["outbox"]["memory"] == 1
    text = await home.grizz("status")
    assert f"Server:    {stack.url} (connected)" in text.stdout
    assert "Last sync: never" in text.stdout

    await stop_gateway(stack)
    down = json.loads((await home.grizz("status", "--json")).stdout)
    assert down["connected"] is False
    assert "unreachable" in down["problem"]
    await stack.gateway.__aenter__()  # stop_stack closes it again

    out = await home.grizz("logout")
    assert out.exit_code == 0
    assert out.stdout == f"Logged out of {stack.url}; local data is kept.\n"
    assert stack.tokens["alice"] not in (home.path / "secrets.toml").read_text()
    after = json.loads((await home.grizz("status", "--json")).stdout)
    assert after["logged_in"] is False
    assert after["outbox"]["memory"] == 1
    notes = await home.grizz("memory", "list")
    assert "honey" in notes.stdout
