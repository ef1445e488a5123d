"""Sentry reporting against a local HTTP endpoint standing in for the DSN:
unexpected exceptions arrive tagged with job and user ids, and nothing of a
message's text or a token leaves the server."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sentry_sdk", reason="the `sentry` extra is not installed")

SECRET = "my diary says the launch code is 0000"
TOKEN = "grz_supersecret_" + "t" * 24
CRASH = f"""
import logging
from grizz_server.cli import _logging
from grizz_server.settings import load_server_settings
from grizz_server import monitoring
_logging("worker-1", load_server_settings(), False)
log = logging.getLogger("grizz_server.worker.runner")
def reply(text, token):
    raise RuntimeError(f"cannot answer {{text!r}} for {{token}}")
try:
    reply({SECRET!r}, {TOKEN!r})
except RuntimeError as exc:
    log.error("job crashed", exc_info=exc, extra={{"job": "job-42", "user": "user-7"}})
log.error("a failure without an exception is not reported: " + {SECRET!r})
log.warning("nor is a warning", exc_info=ValueError({TOKEN!r}))
monitoring.flush()
"""


class _Sink(ThreadingHTTPServer):
    bodies: list[bytes]


class _Handler(BaseHTTPRequestHandler):
    server: _Sink

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            raw = gzip.decompress(raw)
        self.server.bodies.append(raw)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


@pytest.fixture
def sink() -> Iterator[_Sink]:
    server = _Sink(("127.0.0.1", 0), _Handler)
    server.bodies = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _run(tmp_path: Path, dsn: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("INVOCATION_ID", "JOURNAL_STREAM", "SENTRY_DSN")
    }
    env |= {"GRIZZ_HOME": str(tmp_path), "GRIZZ_SERVER_LOG_DIR": str(tmp_path)}
    if dsn:
        env["SENTRY_DSN"] = dsn
    return subprocess.run(
        [sys.executable, "-c", CRASH],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _events(bodies: list[bytes]) -> list[dict[str, Any]]:
    events = []
    for body in bodies:
        for line in body.splitlines():
            item = json.loads(line)
            if "exception" in item:
                events.append(item)
    return events


def test_a_crash_is_reported_with_ids_and_without_text_or_tokens(
    sink: _Sink, tmp_path: Path
) -> None:
    dsn = f"http://publickey@127.0.0.1:{sink.server_address[1]}/1"
    result = _run(tmp_path, dsn)
    assert result.returncode == 0, result.stderr
    events = _events(sink.bodies)
    assert len(events) == 1
    event = events[0]
    assert event["tags"]["job_id"] == "job-42"
    assert event["tags"]["user_id"] == "user-7"
    assert event["tags"]["process"] == "worker-1"
    (exc,) = event["exception"]["values"]
    assert exc["type"] == "RuntimeError"
    assert any(f["function"] == "reply" for f in exc["stacktrace"]["frames"])
    sent = b"".join(sink.bodies).decode()
    assert "launch code" not in sent and TOKEN not in sent
    assert "job crashed" not in sent  # no log message either


def test_without_a_dsn_nothing_is_sent(sink: _Sink, tmp_path: Path) -> None:
    result = _run(tmp_path, "")
    assert result.returncode == 0, result.stderr
    assert sink.bodies == []
