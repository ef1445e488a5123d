"""A crash mid-reply (SIGKILL) loses nothing: after restart the partial reply
is there, marked interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from grizz_tui.store import conversations as conv
from grizz_tui.store.db import open_database
from tests.fakes.openai_server import Text
from tests.tui.helpers import screen_text, shown, wait_ready, wait_until

ROOT = Path(__file__).resolve().parents[2]


def _partial_reply(db_path: Path, day: str, deadline: float) -> str:
    while time.monotonic() < deadline:
        if db_path.exists():
            db = open_database(db_path)
            try:
                found = conv.get_conversation(db, day)
                rows = conv.messages_of(db, found.id) if found else []
            finally:
                db.close()
            if (
                len(rows) == 2
                and str(rows[1].status) == "streaming"
                and len(rows[1].content) > 20
            ):
                return rows[1].content
        time.sleep(0.05)
    raise AssertionError("the reply never started streaming")


async def test_kill_mid_stream_then_restart_shows_partial_interrupted(
    app_factory, provider_env, grizz_home, today
):
    provider_env.enqueue(Text("I am a very long reply. " * 200, chunk=6, delay=0.02))
    err = (grizz_home / "child.err").open("wb")
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.tui.app_driver", "tell me a story"],
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=err,
    )
    try:
        partial = _partial_reply(grizz_home / "grizz.db", today, time.monotonic() + 30)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        err.close()
    assert child.returncode == -signal.SIGKILL, (grizz_home / "child.err").read_text()

    app = app_factory()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_ready(pilot)
        assert app.backend.recovered == 1
        (user, reply) = shown(app)
        assert user == ("user", "complete", "tell me a story")
        assert reply[1] == "interrupted"
        assert reply[2].startswith(partial)
        # the mark is drawn on the next refresh after the day mounts
        await wait_until(
            pilot, lambda: "interrupted" in screen_text(app), what="mark on screen"
        )
        await wait_until(
            pilot,
            lambda: any("marked interrupted" in n.message for n in app._notifications),
            what="recovery notice",
        )
