"""The real `grizz` processes: a piped token, then `grizz ask` through the server;
and a reply cut off by a dead `grizz ask` never overwrites the server's."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable

from grizz_core.domain import Role, Status
from grizz_tui.store import conversations as conv
from grizz_tui.store.db import writing
from tests.fakes.openai_server import FakeOpenAI, Text
from tests.server.conftest import Stack
from tests.sync.conftest import Home


def _run(home: Home, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "grizz_tui", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "GRIZZ_HOME": str(home.path)},
    )


async def test_piped_login_then_ask_through_the_server_as_processes(
    stack: Stack, homes: Callable[[str], Home], provider_env: FakeOpenAI
) -> None:
    home = homes("laptop")
    login = await asyncio.to_thread(
        _run, home, "login", stack.url, stdin=stack.tokens["alice"] + "\n"
    )
    assert login.returncode == 0, login.stderr
    assert "as alice (device alice-laptop)" in login.stdout
    provider_env.enqueue(Text("Through the den.", chunk=3))
    asked = await asyncio.to_thread(_run, home, "ask", "--json", "hello")
    assert asked.returncode == 0, asked.stderr
    assert json.loads(asked.stdout)["reply"] == "Through the den."
    status = await asyncio.to_thread(_run, home, "status", "--json")
    info = json.loads(status.stdout)
    assert info["connected"] is True
    assert info["outbox"]["messages"] == 0


def test_a_server_reply_cut_off_locally_is_recovered_without_queueing_it(
    homes: Callable[[str], Home],
) -> None:
    home = homes("laptop")
    db = home.db()
    try:
        c = conv.ensure_conversation(db, "2026-12-04", "UTC")
        with writing(db):
            db.execute("INSERT INTO sync_state (key, value) VALUES ('applying', '1')")
            conv.add_message(
                db,
                conversation_id=c.id,
                role=Role.ASSISTANT,
                content="half a rep",
                status=Status.STREAMING,
                message_id="r1",
                metadata={"job_id": "j1", "pid": 2**22 + 1, "host": "elsewhere"},
            )
            db.execute("DELETE FROM sync_state WHERE key = 'applying'")
        assert conv.recover_orphans(db) == 1
        row = list(db.query("SELECT status FROM messages WHERE id = 'r1'"))
        assert row == [{"status": "interrupted"}]
        queued = list(db.query("SELECT id FROM outbox WHERE entity = 'messages'"))
        assert queued == []  # the server's stored reply stays the truth
    finally:
        db.close()
