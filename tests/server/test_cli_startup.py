"""`grizz-server run` when a process cannot start: one line, prompt exit, no loop."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from tests.fakes.openai_server import FakeOpenAI
from tests.server.harness import run_cli as _cli


def _plain_lines(stderr: str) -> list[str]:
    """stderr without the JSON log records: what a person reads."""
    return [line for line in stderr.splitlines() if not line.startswith("{")]


@pytest.mark.parametrize("port", ["-5", "0", "70000", "http"])
def test_port_out_of_range_is_refused_at_option_parsing(
    grizz_home: Path, port: str
) -> None:
    result = _cli("run", "--port", port)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "'--port'" in result.stderr
    assert not (grizz_home / "server").exists()  # nothing was started


def test_port_setting_out_of_range(grizz_home: Path) -> None:
    result = _cli("run", env={"GRIZZ_SERVER_PORT": "99999"})
    assert result.returncode == 3 and "Traceback" not in result.stderr
    assert result.stderr == (
        "grizz-server: Server setting $GRIZZ_SERVER_PORT must be a port from 1 to "
        "65535 (or 0 for any free port), got '99999'.\n"
    )


@pytest.mark.slow
def test_port_in_use_is_one_line_and_no_restart_loop(
    provider_env: FakeOpenAI, grizz_home: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        result = _cli("run", "--workers", "1", "--port", str(port))
        took = time.monotonic() - started
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert _plain_lines(result.stderr) == [
        f"grizz-server: gateway cannot start: cannot listen on 127.0.0.1:{port}: "
        "address already in use."
    ]
    assert took < 8, took  # six restarts with backoff took ~11 s
    log = grizz_home / "server" / "logs" / "launcher.log"
    started_gateways = [
        r
        for r in map(json.loads, log.read_text().splitlines())
        if r.get("msg") == "process started" and r.get("child") == "gateway"
    ]
    assert len(started_gateways) == 1
    gateway_log = (grizz_home / "server" / "logs" / "gateway.log").read_text()
    assert '"msg": "cannot start"' in gateway_log and "already in use" in gateway_log
    assert not (grizz_home / "server" / "run.json").exists()


@pytest.mark.slow
def test_unknown_host_is_one_line(provider_env: FakeOpenAI, grizz_home: Path) -> None:
    result = _cli("run", "--workers", "1", "--host", "999.1.1.1")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    [line] = _plain_lines(result.stderr)
    assert line.startswith(
        "grizz-server: gateway cannot start: cannot listen on 999.1.1.1:8765: "
        "unknown host"
    )


def test_a_gateway_run_alone_says_why_it_cannot_start(
    provider_env: FakeOpenAI, grizz_home: Path, redis_url: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _cli("gateway", "--port", str(port), "--redis-url", redis_url)
    assert result.returncode == 78  # STARTUP_FAILED: a launcher would not retry
    assert _plain_lines(result.stderr) == [
        f"grizz-server: Cannot listen on 127.0.0.1:{port}: address already in use."
    ]


def test_run_needs_a_fixed_port(grizz_home: Path) -> None:
    result = _cli("run", env={"GRIZZ_SERVER_PORT": "0"})
    assert result.returncode == 3
    assert result.stderr == (
        "grizz-server: `grizz-server run` needs a port from 1 to 65535.\n"
    )


def test_run_help_shows_the_defaults() -> None:
    result = _cli("run", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "Interface to listen on (default: 127.0.0.1)." in text
    assert "Port (WebSocket + HTTP; default: 8765)." in text
    assert "Worker processes (default: 2)." in text
