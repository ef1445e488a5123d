"""SyncClient's rules without a server: URLs, clear-text tokens, backoff."""

from __future__ import annotations

import itertools

import pytest

from grizz_core.errors import ConfigError, UsageError
from grizz_tui.sync.client import (
    BACKOFF_CAP,
    SyncClient,
    backoff_delays,
    check_transport,
    normalise_url,
)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://grizz.example", "wss://grizz.example"),
        ("http://127.0.0.1:8765", "ws://127.0.0.1:8765"),
        (" wss://grizz.example/ ", "wss://grizz.example/"),
        ("ws://[::1]:8765", "ws://[::1]:8765"),
    ],
)
def test_urls_map_http_to_ws(given: str, expected: str) -> None:
    assert normalise_url(given) == expected


@pytest.mark.parametrize("bad", ["grizz.example", "ftp://x", "ws://", "", "wss:///p"])
def test_anything_else_is_a_usage_error(bad: str) -> None:
    with pytest.raises(UsageError, match="not a server URL"):
        normalise_url(bad)


def test_a_token_never_goes_in_clear_text_to_another_host() -> None:
    for url in ("ws://127.0.0.1:1", "ws://localhost:1", "ws://[::1]:1", "wss://a.b"):
        check_transport(url, insecure=False)
    with pytest.raises(ConfigError, match=r"unencrypted to grizz\.example"):
        SyncClient("ws://grizz.example:8765", "grz_x")
    check_transport("ws://grizz.example", insecure=True)


def test_backoff_doubles_from_one_second_to_thirty_with_jitter() -> None:
    delays = list(itertools.islice(backoff_delays(), 12))
    steps = [min(BACKOFF_CAP, 2.0**n) for n in range(12)]
    for delay, step in zip(delays, steps, strict=True):
        assert step / 2 <= delay <= step
    assert max(delays) <= BACKOFF_CAP
    assert len(set(delays)) > 1
