"""Behind a reverse proxy: authentication failures name the client from
`X-Forwarded-For` only when the peer is a trusted proxy."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from grizz_core.errors import ConfigError
from grizz_server.gateway.auth import client_address
from grizz_server.settings import (
    ServerSettings,
    load_server_settings,
    proxy_networks,
)
from tests.fakes.openai_server import FakeOpenAI
from tests.server.conftest import start_stack, stop_stack

BAD = "grz_bad_" + "x" * 30


async def _failed_remote(
    settings: ServerSettings, caplog: pytest.LogCaptureFixture, forwarded: str
) -> dict[str, Any]:
    running = await start_stack(settings, workers=0)
    try:
        caplog.clear()
        headers = {"Authorization": f"Bearer {BAD}", "X-Forwarded-For": forwarded}
        with pytest.raises(InvalidStatus):
            async with connect(running.url, additional_headers=headers):
                pass
    finally:
        await stop_stack(running)
    records = [r for r in caplog.records if r.getMessage() == "authentication failed"]
    assert len(records) == 1
    return records[0].__dict__


@pytest.mark.parametrize(
    ("trusted", "remote", "proxy"),
    [
        ("127.0.0.1", "203.0.113.9", True),
        ("10.0.0.0/8, 127.0.0.0/8", "203.0.113.9", True),
        ("", "127.0.0.1", False),
        ("192.0.2.1", "127.0.0.1", False),
    ],
)
async def test_auth_failures_log_the_forwarded_client_only_from_trusted_proxies(
    server_settings: ServerSettings,
    provider_env: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
    trusted: str,
    remote: str,
    proxy: bool,
) -> None:
    caplog.set_level(logging.INFO, logger="grizz_server")
    settings = dataclasses.replace(server_settings, trusted_proxies=trusted)
    record = await _failed_remote(settings, caplog, "198.51.100.7, 203.0.113.9")
    assert record["remote"].partition(":")[0] == remote
    assert ("proxy" in record) is proxy
    if proxy:
        assert record["proxy"].startswith("127.0.0.1:")
    assert BAD not in str(record)


def test_the_client_is_the_rightmost_untrusted_hop() -> None:
    trusted = proxy_networks("10.0.0.0/8,127.0.0.1")
    # a client can forge what it puts left of the first proxy; not the rest
    assert client_address("127.0.0.1", "6.6.6.6, 1.2.3.4, 10.1.1.1", trusted) == (
        "1.2.3.4"
    )
    assert client_address("127.0.0.1", "", trusted) == "127.0.0.1"
    assert client_address("127.0.0.1", "garbage", trusted) == "garbage"
    assert client_address("8.8.8.8", "1.2.3.4", trusted) == "8.8.8.8"


def test_a_bad_trusted_proxies_setting_is_one_clear_error() -> None:
    with pytest.raises(ConfigError, match="TRUSTED_PROXIES"):
        load_server_settings(env={"GRIZZ_SERVER_TRUSTED_PROXIES": "10.0.0.0/8, nope"})
