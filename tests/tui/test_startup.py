"""Start-up: the first frame is drawn before anything heavy is imported.

The real `grizz` entry point runs in a pseudo-terminal with
`GRIZZ_STARTUP_PROBE`, which makes the app record `sys.modules` at its first
frame and quit. httpx/openai (network), sqlite-utils (the store) and
Textual's Markdown must all come later: after the paint or on first send.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOT_BEFORE_FIRST_FRAME = (
    "httpx",
    "openai",
    "sqlite_utils",
    "keyring",
    "textual.widgets._markdown",
    "markdown_it",
    "grizz_core.providers.openai_compat",
    "grizz_tui.store.db",
)


def run_in_pty(
    args: list[str], env: dict[str, str], timeout: float = 60
) -> tuple[int, bytes]:
    """Run `args` on a pseudo-terminal, draining its output; (exit code, output)."""
    main, child_tty = pty.openpty()
    output = bytearray()
    try:
        process = subprocess.Popen(
            args,
            cwd=ROOT,
            env={**env, "TERM": "xterm-256color"},
            stdin=child_tty,
            stdout=child_tty,
            stderr=child_tty,
        )
        os.close(child_tty)
        child_tty = -1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(main, 65536)
                except OSError:  # EIO: the child closed the terminal
                    chunk = b""
                output += chunk
                if not chunk and process.poll() is not None:
                    break
            elif process.poll() is not None:
                break
        else:
            process.kill()
        code = process.wait(timeout=10)
    finally:
        if child_tty >= 0:
            os.close(child_tty)
        os.close(main)
    return code, bytes(output)


def run_probe(home: Path, env: dict[str, str]) -> dict[str, object]:
    probe = home / "probe.json"
    code, output = run_in_pty(
        [sys.executable, "-m", "grizz_tui"], {**env, "GRIZZ_STARTUP_PROBE": str(probe)}
    )
    assert code == 0, output[-2000:]
    return json.loads(probe.read_text())


def test_first_frame_imports_nothing_heavy(grizz_home, provider_env):
    data = run_probe(grizz_home, os.environ.copy())
    modules = set(data["modules"])  # type: ignore[arg-type]
    assert "textual.app" in modules and "grizz_tui.tui.screens.chat" in modules
    loaded = [name for name in NOT_BEFORE_FIRST_FRAME if name in modules]
    assert loaded == []


def test_no_network_at_start_up(grizz_home, provider_env):
    run_probe(grizz_home, os.environ.copy())
    assert provider_env.requests == []


QUIT_PROBE = """
import atexit, gc, sys
atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count() > 0))
sys.argv = ["grizz"]
from grizz_tui.cli import main
main()
"""


def test_the_interpreter_shutdown_skips_its_collections(grizz_home, provider_env):
    """A full collection of every object at shutdown took 1.1 s of the quit
    after a page of long replies (issue 13): the app freezes them on exit."""
    env = {**os.environ, "GRIZZ_STARTUP_PROBE": str(grizz_home / "probe.json")}
    code, output = run_in_pty([sys.executable, "-c", QUIT_PROBE], env)
    assert code == 0, output[-2000:]
    assert b"frozen at exit: True" in output
