"""Convergence, as a hypothesis state machine: three devices of one user and
one real server (gateway, worker, Redis, SQLite store, the fake provider).

Random steps: a device goes offline or online, adds, edits or deletes a note,
edits a note with a wrong clock (`updated_at` far in the future or the past),
asks Grizz something (`grizz ask`: through the server, or offline answered
directly / kept pending), or syncs. At the end every device syncs twice, in
turn, and then every device and the server hold the same rows
(conversations, messages, notes with their tombstones): none lost, none
duplicated, every user message answered exactly once.

The server runs on its own event loop in a thread, so the state machine's
steps (the real `grizz` CLI, in-process) stay synchronous.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import os
import tempfile
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from typer.testing import CliRunner, Result

from grizz_server.redis_server import free_port
from grizz_server.settings import ServerSettings
from grizz_tui.cli import app
from grizz_tui.store.db import open_database
from tests.fakes.openai_server import FakeOpenAI
from tests.server.conftest import Stack, start_stack, stop_stack

T = TypeVar("T")
DEVICES = ("laptop", "desktop", "phone")
NO_FALLBACK = "phone"
"""This device keeps an offline message pending instead of answering directly."""
EXAMPLES = int(os.environ.get("GRIZZ_CONVERGENCE_EXAMPLES", "25"))
"""Random runs per test (raise it to search harder: the steps are cheap)."""
SKEWS = (-400 * 86400, -3600, -5, 5, 3600, 365 * 86400)
"""Seconds a device's clock is off when it edits a note."""

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120 + 5 * EXAMPLES)]


class ServerThread:
    """A server stack on an event loop of its own, in a daemon thread."""

    def __init__(self, server_settings: ServerSettings) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.stack: Stack = self.run(start_stack(server_settings, workers=1))
        self.users = itertools.count()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=120)

    def new_user(self) -> tuple[str, list[str]]:
        """A fresh user and a token per device: (user id, tokens)."""

        async def make() -> tuple[str, list[str]]:
            name = f"user{next(self.users)}"
            user = await self.stack.store.add_user(name)
            tokens = [
                (await self.stack.store.add_token(name, f"{name}-{d}"))[0]
                for d in DEVICES
            ]
            return user.id, tokens

        return self.run(make())

    def rows(self, user_id: str) -> dict[str, dict[str, tuple[Any, ...]]]:
        async def pull() -> list[dict[str, Any]]:
            store = self.stack.store.for_user(user_id)
            found: list[dict[str, Any]] = []
            cursor, more = 0, True
            while more:
                page, cursor, more = await store.pull(cursor, 500)
                found += page
            return found

        table: dict[str, dict[str, tuple[Any, ...]]] = {
            "conversations": {},
            "messages": {},
            "memory": {},
        }
        for change in self.run(pull()):
            entity, data = change["entity"], change["data"]
            assert change["id"] not in table[entity], "a row pulled twice"
            table[entity][change["id"]] = _key(entity, data)
        return table

    def close(self) -> None:
        self.run(stop_stack(self.stack))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def _key(entity: str, row: dict[str, Any]) -> tuple[Any, ...]:
    """What must agree everywhere about a row."""
    if entity == "conversations":
        return (row["day"], row["title"] or "")
    if entity == "messages":
        return (
            row["conversation_id"],
            str(row["role"]),
            row["content"],
            str(row["status"]),
            bool(row["deleted"]),
        )
    return (row["content"], row["title"] or "", bool(row["deleted"]))


class Device:
    """One device home, driven through the real `grizz` CLI."""

    def __init__(self, name: str, root: Path, url: str, dead_url: str) -> None:
        self.name = name
        self.path = root / name
        self.path.mkdir()
        self.url = url
        self.dead_url = dead_url
        self.online = True

    def grizz(self, *args: str, input: str | None = None) -> Result:
        env = {"GRIZZ_HOME": str(self.path)}
        if not self.online:
            env["GRIZZ_SERVER__URL"] = self.dead_url
        if self.name == NO_FALLBACK:
            env["GRIZZ_SYNC__FALLBACK"] = "false"
        return CliRunner().invoke(app, list(args), input=input, env=env)

    def query(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        db = open_database(self.path / "grizz.db")
        try:
            return list(db.query(sql, params or []))
        finally:
            db.close()

    def live_notes(self) -> list[str]:
        rows = self.query("SELECT id FROM memory WHERE deleted = 0 ORDER BY id")
        return [r["id"] for r in rows]

    def rows(self) -> dict[str, dict[str, tuple[Any, ...]]]:
        tables = ("conversations", "messages", "memory")
        return {
            t: {r["id"]: _key(t, r) for r in self.query(f"SELECT * FROM {t}")}
            for t in tables
        }


@pytest.fixture
def server(
    server_settings: ServerSettings, provider_env: FakeOpenAI
) -> Iterator[ServerThread]:
    running = ServerThread(server_settings)
    try:
        yield running
    finally:
        running.close()


class Convergence(RuleBasedStateMachine):
    server: ServerThread
    root: Path

    def __init__(self) -> None:
        super().__init__()
        self.user_id, tokens = self.server.new_user()
        self.dir = Path(tempfile.mkdtemp(dir=self.root))
        dead = f"ws://127.0.0.1:{free_port()}"
        self.devices = [
            Device(name, self.dir, self.server.stack.url, dead) for name in DEVICES
        ]
        for device, token in zip(self.devices, tokens, strict=True):
            done = device.grizz("login", device.url, input=token + "\n")
            assert done.exit_code == 0, done.stderr
        self.words = itertools.count()
        self.notes_made: set[str] = set()
        self.asked: list[str] = []

    @initialize()
    def nothing_yet(self) -> None:
        pass

    def _word(self) -> str:
        return f"w{next(self.words)}"

    @rule(d=st.sampled_from(range(len(DEVICES))), online=st.booleans())
    def connectivity(self, d: int, online: bool) -> None:
        self.devices[d].online = online

    @rule(d=st.sampled_from(range(len(DEVICES))))
    def add_note(self, d: int) -> None:
        done = self.devices[d].grizz("memory", "add", "note", self._word())
        assert done.exit_code == 0, done.stderr
        self.notes_made.add(done.stdout.strip())

    @rule(d=st.sampled_from(range(len(DEVICES))), pick=st.integers(0, 99))
    def edit_note(self, d: int, pick: int) -> None:
        notes = self.devices[d].live_notes()
        if notes:
            ref = notes[pick % len(notes)]
            done = self.devices[d].grizz("memory", "edit", ref, "edited", self._word())
            assert done.exit_code == 0, done.stderr

    @rule(d=st.sampled_from(range(len(DEVICES))), pick=st.integers(0, 99))
    def delete_note(self, d: int, pick: int) -> None:
        notes = self.devices[d].live_notes()
        if notes:
            done = self.devices[d].grizz("memory", "rm", notes[pick % len(notes)])
            assert done.exit_code == 0, done.stderr

    @rule(
        d=st.sampled_from(range(len(DEVICES))),
        pick=st.integers(0, 99),
        skew=st.sampled_from(SKEWS),
        delete=st.booleans(),
    )
    def skewed_edit(self, d: int, pick: int, skew: int, delete: bool) -> None:
        """An edit (or delete) on a device whose clock is `skew` seconds off."""
        device = self.devices[d]
        notes = device.query("SELECT id FROM memory ORDER BY id")
        if not notes:
            return
        stamp = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=skew)
        db = open_database(device.path / "grizz.db")
        try:
            db.execute(
                "UPDATE memory SET content = ?, deleted = ?, updated_at = ?"
                " WHERE id = ?",
                [
                    f"skewed {self._word()}",
                    int(delete),
                    stamp.isoformat(timespec="microseconds"),
                    notes[pick % len(notes)]["id"],
                ],
            )
            db.conn.commit()
        finally:
            db.close()

    @rule(d=st.sampled_from(range(len(DEVICES))))
    def ask(self, d: int) -> None:
        device = self.devices[d]
        text = f"question {self._word()}"
        done = device.grizz("ask", text)
        expected = 1 if not device.online and device.name == NO_FALLBACK else 0
        assert done.exit_code == expected, (done.exit_code, done.stderr)
        self.asked.append(text)

    @rule(d=st.sampled_from(range(len(DEVICES))))
    def sync(self, d: int) -> None:
        device = self.devices[d]
        done = device.grizz("sync")
        assert done.exit_code == (0 if device.online else 1), done.stderr

    @invariant()
    def nothing_waits_twice(self) -> None:
        for device in self.devices:
            pending = device.query(
                "SELECT message_id, COUNT(*) AS n FROM pending_sends"
                " GROUP BY message_id HAVING n > 1"
            )
            assert pending == []

    def teardown(self) -> None:
        for device in self.devices:
            device.online = True
        for _ in range(2):
            for device in self.devices:
                done = device.grizz("sync")
                assert done.exit_code == 0, done.stderr
        server = self.server.rows(self.user_id)
        for device in self.devices:
            assert device.rows() == server, f"{device.name} differs from the server"
            assert device.query("SELECT * FROM outbox") == []
            assert device.query("SELECT * FROM pending_sends") == []
        notes = {note_id[:8] for note_id in server["memory"]}
        assert self.notes_made <= notes, "a note was lost"
        messages = list(server["messages"].values())
        users = sorted(m[2] for m in messages if m[1] == "user")
        assert users == sorted(self.asked), "a message was lost or duplicated"
        replies = [m for m in messages if m[1] == "assistant"]
        assert len(replies) == len(users), "a message not answered exactly once"
        assert all(m[3] == "complete" for m in messages)


def test_devices_and_server_converge(server: ServerThread, tmp_path: Path) -> None:
    class Machine(Convergence):
        pass

    Machine.server = server
    Machine.root = tmp_path
    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=15,
            deadline=None,
            derandomize=False,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
