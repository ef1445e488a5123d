"""`grizz ask` against the real local model, as a user runs it (a process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from grizz_core import paths
from grizz_tui.store.db import open_database

pytestmark = pytest.mark.local

GRIZZ = str(Path(sys.executable).parent / "grizz")


def rows() -> list[dict[str, object]]:
    db = open_database(paths.db_path())
    return list(
        db.query("SELECT role, content, status, model FROM messages ORDER BY rowid")
    )


def test_ask_streams_a_reply_stored_complete(local_env: Path) -> None:
    done = subprocess.run(
        [GRIZZ, "ask", "--provider", "local", "hi"],
        capture_output=True,
        env=dict(os.environ),
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().strip()
    # llama.cpp's own logging never reaches the user's terminal.
    assert done.stderr == b""
    user, reply = rows()
    assert (user["role"], user["content"], user["status"]) == ("user", "hi", "complete")
    assert reply["role"] == "assistant" and reply["status"] == "complete"
    assert str(reply["content"]).strip() == done.stdout.decode().strip()
    assert reply["model"] == "qwen2.5-coder-0.5b"


def test_ctrl_c_keeps_the_partial_reply_as_interrupted(local_env: Path) -> None:
    env = {**os.environ, "GRIZZ_MAX_TOKENS": "400"}
    proc = subprocess.Popen(
        [GRIZZ, "ask", "--provider", "local", "Tell me a long story about a bear."],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    assert proc.stdout is not None
    first = os.read(proc.stdout.fileno(), 64)  # blocks until the reply streams
    assert first
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"interrupted" in err and b"Traceback" not in err
    reply = rows()[-1]
    assert reply["status"] == "interrupted"
    assert str(reply["content"]).startswith((first + out).decode()[:8])
