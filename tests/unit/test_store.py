"""The local store: schema, migrations, concurrency, damage, search, transfer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlite_utils

from grizz_core.domain import Role, Status
from grizz_core.errors import StoreError
from grizz_tui.store import conversations as conv
from grizz_tui.store import memory as mem
from grizz_tui.store.db import Database, open_database
from grizz_tui.store.migrations import migrations
from grizz_tui.store.search import fts_query, search
from grizz_tui.store.transfer import export_data, import_data


def test_day_conversation_id_is_deterministic(db: Database) -> None:
    a = conv.ensure_conversation(db, "2026-11-23", "Europe/Berlin")
    b = conv.ensure_conversation(db, "2026-11-23", "Europe/Berlin")
    assert a.id == b.id == conv.day_conversation_id("2026-11-23")
    assert conv.day_conversation_id("2026-11-24") != a.id


def test_database_is_wal_with_busy_timeout(db: Database) -> None:
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000


def test_upgrade_from_first_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = sqlite_utils.Database(path)
    migrations.apply(old, stop_before="m002_add_search")
    old.execute(
        "INSERT INTO conversations VALUES ('c1', '2026-01-01', 'UTC', '', 't', 't')"
    )
    old.execute(
        "INSERT INTO messages (id, conversation_id, role, content, status, created_at,"
        " updated_at) VALUES"
        " ('m1', 'c1', 'user', 'honey pancakes', 'complete', 't', 't')"
    )
    old.execute(
        "INSERT INTO memory (id, content, created_at, updated_at)"
        " VALUES ('n1', 'likes salmon', 't', 't')"
    )
    old.conn.commit()
    old.close()

    db = open_database(path)
    assert migrations.pending(sqlite_utils.Database(db.conn)) == []
    assert [h.id for h in search(db, "pancakes")] == ["m1"]
    assert mem.search_memory(db, "salmon")[0].id == "n1"
    outbox = {(r["entity"], r["id"]) for r in db.query("SELECT * FROM outbox")}
    assert {("messages", "m1"), ("memory", "n1"), ("conversations", "c1")} <= outbox


def test_not_a_database_is_a_clear_error_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "grizz.db"
    path.write_bytes(b"this is my shopping list, not a database" * 100)
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not a usable Grizz database"):
        open_database(path)
    assert path.read_bytes() == before


def test_corrupted_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "grizz.db"
    db = open_database(path)
    for i in range(200):
        conv.ensure_conversation(db, f"2025-01-{i % 28 + 1:02d}", "UTC")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    data = bytearray(path.read_bytes())
    data[0:16] = b"garbage garbage!"
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError):
        open_database(path)


def test_two_processes_write_concurrently(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from grizz_tui.store.db import Database, open_database
        from grizz_tui.store import conversations as conv
        from grizz_core.domain import Role
        db = open_database(Path({str(path)!r}))
        c = conv.ensure_conversation(db, "2026-11-23", "UTC")
        for i in range(150):
            conv.add_message(db, conversation_id=c.id, role=Role.USER,
                             content=f"{{sys.argv[1]}} {{i}}")
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, name], env=env, stderr=subprocess.PIPE
        )
        for name in ("alpha", "beta")
    ]
    errors = [p.communicate(timeout=60)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    db = open_database(path)
    assert db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 300


def test_reply_lifecycle_and_orphan_recovery(db: Database) -> None:
    c = conv.ensure_conversation(db, "2026-11-23", "UTC")
    alive = conv.add_message(
        db,
        conversation_id=c.id,
        role=Role.ASSISTANT,
        content="still going",
        status=Status.STREAMING,
        metadata=conv.writer_identity(),
    )
    dead = conv.add_message(
        db,
        conversation_id=c.id,
        role=Role.ASSISTANT,
        content="half a sent",
        status=Status.STREAMING,
        metadata={"pid": 2**22 + 12345, "host": "elsewhere"},
    )
    assert conv.recover_orphans(db) == 1
    assert conv.get_message(db, alive.id).status == Status.STREAMING  # type: ignore[union-attr]
    recovered = conv.get_message(db, dead.id)
    assert recovered is not None
    assert recovered.status == Status.INTERRUPTED and recovered.content == "half a sent"


def test_memory_tombstones_and_prefix_lookup(db: Database) -> None:
    note = mem.add_memory(db, "Their dog is called Biscuit", title="dog")
    assert mem.get_memory(db, note.id[:6]) == note
    assert mem.delete_memory(db, note.id[:6]) is not None
    assert mem.list_memory(db) == []
    row = db.execute("SELECT deleted FROM memory WHERE id = ?", [note.id]).fetchone()
    assert row[0] == 1  # kept as a tombstone so the delete can sync
    assert mem.restore_memory(db, note.id) is not None
    assert [m.id for m in mem.search_memory(db, "biscuit")] == [note.id]


@pytest.mark.parametrize(
    "text", ["don't", "C++ templates", 'a "quoted" - b', "AND OR NOT", ")("]
)
def test_search_accepts_any_user_text(db: Database, text: str) -> None:
    c = conv.ensure_conversation(db, "2026-11-23", "UTC")
    conv.add_message(
        db, conversation_id=c.id, role=Role.USER, content=f"about {text} today"
    )
    search(db, text)  # must not raise an FTS syntax error
    assert fts_query("") == ""


def test_search_finds_messages_and_notes(db: Database) -> None:
    c = conv.ensure_conversation(db, "2026-11-20", "UTC")
    conv.add_message(
        db, conversation_id=c.id, role=Role.USER, content="I went kayaking"
    )
    mem.add_memory(db, "Loves kayaking on lakes")
    hits = search(db, "kayak")
    assert {h.kind for h in hits} == {"message", "memory"}
    assert next(h for h in hits if h.kind == "message").day == "2026-11-20"


def test_json_export_round_trips(db: Database, tmp_path: Path) -> None:
    from grizz_core.domain import Attachment

    c = conv.ensure_conversation(db, "2026-11-23", "UTC")
    att = Attachment("a1", "", "bear.png", "image/png", 3, "abc", b"\x89PN")
    conv.add_message(
        db, conversation_id=c.id, role=Role.USER, content="hi", attachments=[att]
    )
    conv.add_message(
        db,
        conversation_id=c.id,
        role=Role.ASSISTANT,
        content="hey",
        status=Status.INTERRUPTED,
    )
    mem.add_memory(db, "likes tea")
    data = json.loads(json.dumps(export_data(db)))

    other = open_database(tmp_path / "other.db")
    assert import_data(other, data) == {"conversations": 1, "messages": 2, "memory": 1}
    assert import_data(other, data) == {"conversations": 0, "messages": 0, "memory": 0}
    again = json.loads(json.dumps(export_data(other)))
    data.pop("exported_at"), again.pop("exported_at")
    assert again == data


def test_schema_names_match_registered_migrations() -> None:
    from grizz_tui.store.schema import MIGRATION_NAMES

    assert tuple(m.name for m in migrations._migrations) == MIGRATION_NAMES


def test_damaged_pages_are_found_before_anything_is_written(tmp_path: Path) -> None:
    from tests.fakes.damaged_db import make_damaged_db

    path = tmp_path / "grizz.db"
    damaged = make_damaged_db(path)
    with pytest.raises(StoreError, match=r"not a usable Grizz database .* damaged"):
        open_database(path, check=True)
    assert path.read_bytes() == damaged
