"""`grizz-server backup` / `restore` (issue 14): a round trip through real
processes, SQLite files, Redis and a gateway that serves the restored data."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from grizz_core import protocol as p
from grizz_server.gateway.server import RunningGateway
from grizz_server.settings import ServerSettings
from grizz_server.store import ServerStore
from tests.server.harness import Device
from tests.server.test_admin_ops import _fill


def cli(*args: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "GRIZZ_HOME": str(home), **env}
    environ.pop("GRIZZ_SERVER_DB_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "grizz_server", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
    )


def dump(path: Path) -> dict[str, list[tuple[object, ...]]]:
    conn = sqlite3.connect(path)
    try:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name"
            )
        ]
        return {
            t: sorted(conn.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr)
            for t in tables
        }
    finally:
        conn.close()


async def _tokens(url: str) -> dict[str, str]:
    store = await ServerStore.open(url)
    try:
        return {name: (await store.add_token(name, "tablet"))[0] for name in ("alice",)}
    finally:
        await store.close()


async def _serve_and_pull(settings: ServerSettings, token: str) -> tuple[str, int]:
    async with RunningGateway(settings) as gateway:
        device = await Device(f"ws://127.0.0.1:{gateway.port}", token).connect()
        welcome = await device.wait_for(lambda: device.frame(p.Welcome))
        changes = await device.request(p.Pull(after=0, limit=100), p.Changes)
        await device.close()
    return welcome.user, len(changes.changes)


def test_round_trip_serves_the_same_data(
    tmp_path: Path, redis_url: str, fast_settings: ServerSettings
) -> None:
    old_home, new_home = tmp_path / "old", tmp_path / "new"
    old_home.mkdir()
    new_home.mkdir()
    old_db = old_home / "server.db"
    asyncio.run(_fill(f"sqlite:///{old_db}"))
    token = asyncio.run(_tokens(f"sqlite:///{old_db}"))["alice"]
    settings = dataclasses.replace(
        fast_settings, redis_url=redis_url, port=0, db_url=f"sqlite:///{old_db}"
    )
    served_before = asyncio.run(_serve_and_pull(settings, token))
    assert served_before[0] == "alice" and served_before[1] >= 3

    # online: a store connection stays open (WAL, a write not checkpointed)
    live = sqlite3.connect(old_db)
    live.execute("PRAGMA wal_autocheckpoint=0")
    live.execute("UPDATE users SET created_at = created_at WHERE name = 'bob'")
    live.commit()
    archive = tmp_path / "backups" / "grizz.db"
    archive.parent.mkdir()
    made = cli("backup", str(archive), home=old_home)
    live.close()
    assert made.returncode == 0, made.stderr
    assert oct(archive.stat().st_mode & 0o777) == "0o600"
    assert list(archive.parent.iterdir()) == [archive]  # no temporary file left
    again = cli("backup", str(archive), home=old_home)
    assert again.returncode == 2 and "already exists" in again.stderr

    # a new home has a store of its own, which restore keeps aside
    assert cli("users", "add", "someone-else", home=new_home).returncode == 0
    restored = cli("restore", str(archive), home=new_home)
    assert restored.returncode == 0, restored.stderr
    assert (new_home / "server.db.before-restore").is_file()
    assert dump(new_home / "server.db") == dump(old_db)

    users = cli("users", "list", home=new_home)
    assert [line.split()[0] for line in users.stdout.splitlines()] == ["alice", "bob"]
    new_settings = dataclasses.replace(
        settings, db_url=f"sqlite:///{new_home / 'server.db'}"
    )
    assert asyncio.run(_serve_and_pull(new_settings, token)) == served_before


def test_restore_refuses_while_a_server_runs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    asyncio.run(_fill(f"sqlite:///{home / 'server.db'}"))
    archive = tmp_path / "b.db"
    assert cli("backup", str(archive), home=home).returncode == 0
    before = (home / "server.db").read_bytes()
    with subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from grizz_server.generation import take_lock; "
            "take_lock(); print('locked', flush=True); time.sleep(120)",
        ],
        env={**os.environ, "GRIZZ_HOME": str(home)},
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline() == "locked\n"
            refused = cli("restore", str(archive), home=home)
        finally:
            holder.kill()
            holder.wait()
    assert refused.returncode != 0
    assert "already running" in refused.stderr and "Traceback" not in refused.stderr
    assert refused.stderr.count("\n") == 1
    assert (home / "server.db").read_bytes() == before
    # the lock died with its holder: restore goes through now
    assert cli("restore", str(archive), home=home).returncode == 0


def test_restore_checks_the_file_first(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    assert cli("users", "add", "alice", home=home).returncode == 0
    before = dump(home / "server.db")
    damaged = tmp_path / "damaged.db"
    assert cli("backup", str(damaged), home=home).returncode == 0
    data = bytearray(damaged.read_bytes())
    data[4096:] = b"\xff" * (len(data) - 4096)  # every page but the first
    damaged.write_bytes(bytes(data))
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE x (y)").connection.close()
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n" * 300)
    for path, expected in [
        (damaged, "is damaged"),
        (other, "is not a grizz-server database"),
        (text, "damaged"),
        (tmp_path / "missing.db", "does not exist"),
    ]:
        result = cli("restore", str(path), home=home)
        assert result.returncode != 0 and expected in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert dump(home / "server.db") == before


def test_postgresql_prints_the_pg_dump_route(tmp_path: Path) -> None:
    url = "postgresql://grizz:s3cret@127.0.0.1:5432/grizz"
    for command in ("backup", "restore"):
        result = cli(command, str(tmp_path / "x.dump"), "--db-url", url, home=tmp_path)
        assert result.returncode == 2
        assert "pg_dump --format=custom" in result.stderr
        assert "pg_restore --clean" in result.stderr
        assert "s3cret" not in result.stderr + result.stdout
    assert not (tmp_path / "x.dump").exists()
