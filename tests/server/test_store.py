"""ServerStore: opening, migrations, users and device tokens (SQLite and PostgreSQL)."""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from grizz_core.domain import Role, day_conversation_id
from grizz_core.errors import UsageError
from grizz_server.store import ServerStore, StoreError, default_db_url
from grizz_server.store.engine import parse_url
from grizz_server.store.factory import open_backend
from grizz_server.store.migrations import LATEST, migrate
from grizz_server.store.sqlite_backend import SqliteBackend
from tests.server.harness import until


async def _dump(store: ServerStore, table: str) -> list[dict[str, object]]:
    async with store._backend.read() as conn:
        rows = await conn.execute(text(f"SELECT * FROM {table}"))
        return [dict(r._mapping) for r in rows]


class TestUsers:
    async def test_add_get_list(self, store: ServerStore) -> None:
        alice = await store.add_user("alice")
        await store.add_user("bob")
        assert await store.get_user("alice") == alice
        assert await store.get_user("carol") is None
        assert [u.name for u in await store.list_users()] == ["alice", "bob"]

    async def test_duplicate_is_a_clear_error(self, store: ServerStore) -> None:
        await store.add_user("alice")
        with pytest.raises(UsageError, match="already exists"):
            await store.add_user("alice")
        assert len(await store.list_users()) == 1

    @pytest.mark.parametrize("name", ["", " ", "a b", "-x", "x" * 65, "al/ice", "é"])
    async def test_bad_names_refused(self, store: ServerStore, name: str) -> None:
        with pytest.raises(UsageError, match="not a valid user name"):
            await store.add_user(name)


class TestTokens:
    async def test_issue_authenticate_list(self, store: ServerStore) -> None:
        alice = await store.add_user("alice")
        token, info = await store.add_token("alice", "laptop")
        assert token.startswith("grz_") and len(token) > 40
        principal = await store.authenticate(token)
        assert principal is not None
        assert (
            principal.user_id,
            principal.user_name,
            principal.device,
            principal.token_id,
        ) == (alice.id, "alice", "laptop", info.id)
        [listed] = await store.list_tokens("alice")
        assert listed.id == info.id and not listed.revoked
        assert listed.last_used_at is not None  # authenticate recorded the use

    async def test_only_the_hash_is_stored(self, store: ServerStore) -> None:
        await store.add_user("alice")
        token, _ = await store.add_token("alice", "laptop")
        rows = await _dump(store, "tokens")
        assert token not in repr(rows)
        assert token[4:] not in repr(rows)
        assert rows[0]["token_hash"] == hashlib.sha256(token.encode()).hexdigest()

    async def test_wrong_and_odd_tokens_are_refused(self, store: ServerStore) -> None:
        await store.add_user("alice")
        token, _ = await store.add_token("alice", "laptop")
        for bad in ["", "grz_nope", token + "x", token[:-1], "x" * 10_000, None, 42]:
            assert await store.authenticate(bad) is None  # type: ignore[arg-type]

    async def test_revoke_by_prefix(self, store: ServerStore) -> None:
        await store.add_user("alice")
        token, info = await store.add_token("alice", "laptop")
        other, _ = await store.add_token("alice", "phone")
        assert await store.revoke_token(info.id[:6]) is True
        assert await store.authenticate(token) is None
        assert await store.authenticate(other) is not None
        assert [t.revoked for t in await store.list_tokens("alice")] == [True, False]
        assert (
            await store.revoke_token(info.id) is True
        )  # already revoked: still a token
        assert await store.revoke_token("ffffffffffff") is False
        assert await store.revoke_token("ab") is False  # too short to be a prefix

    async def test_ambiguous_prefix(self, store: ServerStore) -> None:
        await store.add_user("alice")
        infos = [(await store.add_token("alice", f"d{i}"))[1] for i in range(2)]
        # Ids are random; give two of them a common 4-character prefix.
        async with store._backend.write() as conn:
            for number, info in enumerate(infos):
                await conn.execute(
                    text("UPDATE tokens SET id = :new WHERE id = :old"),
                    {"new": f"abcd0{number}", "old": info.id},
                )
        with pytest.raises(UsageError, match="several tokens"):
            await store.revoke_token("abcd")

    async def test_unknown_user_and_bad_device(self, store: ServerStore) -> None:
        with pytest.raises(UsageError, match="no user named 'ghost'"):
            await store.add_token("ghost", "laptop")
        with pytest.raises(UsageError, match="no user named 'ghost'"):
            await store.list_tokens("ghost")
        await store.add_user("alice")
        for device in ["", "   ", "x" * 65, "tab\there"]:
            with pytest.raises(UsageError, match="device name"):
                await store.add_token("alice", device)


class TestOpening:
    async def test_check_passes_on_a_fresh_store(self, store: ServerStore) -> None:
        await store.check()
        assert store.dialect in ("sqlite", "postgresql")

    async def test_reopen_keeps_data(self, store_url: str) -> None:
        first = await ServerStore.open(store_url)
        await first.add_user("alice")
        await first.close()
        second = await ServerStore.open(store_url)
        try:
            assert [u.name for u in await second.list_users()] == ["alice"]
        finally:
            await second.close()

    async def test_newer_schema_is_refused(
        self, store: ServerStore, store_url: str
    ) -> None:
        async with store._backend.write() as conn:
            await conn.execute(
                text(
                    "INSERT INTO schema_migrations (version, name, applied_at)"
                    " VALUES (99, 'future', 'x')"
                )
            )
        with pytest.raises(StoreError, match="newer than this grizz-server"):
            await ServerStore.open(store_url)
        with pytest.raises(StoreError, match="schema version 99"):
            await store.check()

    async def test_migrates_from_the_first_schema(self, store_url: str) -> None:
        target = parse_url(store_url)
        backend = open_backend(target)
        assert await migrate(backend, target=1) == [1]
        conv = day_conversation_id("2026-01-02")
        async with backend.write() as conn:
            for sql in (
                "INSERT INTO users (id, name, created_at, seq)"
                " VALUES ('u1', 'old', 't', 2)",
                "INSERT INTO conversations VALUES"
                f" ('u1', '{conv}', '2026-01-02', 'UTC', '', 't', 't', 0, 1)",
                "INSERT INTO messages VALUES ('u1', 'm1', "
                f"'{conv}', 'user', 'from v1', 'complete', '', '{{}}', "
                "'2026-01-02T10:00:00.000000+00:00',"
                " '2026-01-02T10:00:00.000000+00:00', 0, 2)",
            ):
                await conn.execute(text(sql))
        await backend.dispose()

        store = await ServerStore.open(store_url)
        try:
            await store.check()
            user = store.for_user("u1")
            old = await user.get_message("m1")
            assert (
                old is not None and old.content == "from v1" and old.role == Role.USER
            )
            assert await user.attachments_of("m1") == []
            changes, cursor, _ = await user.pull(0)
            assert [c["id"] for c in changes] == [conv, "m1"] and cursor == 2
            assert "attachments" not in changes[1]["data"]
            rows = await _dump(store, "schema_migrations")
            assert sorted(int(r["version"]) for r in rows) == list(range(1, LATEST + 1))  # type: ignore[call-overload]
        finally:
            await store.close()

    async def test_two_openers_migrate_once(self, store_url: str) -> None:
        import asyncio

        stores = await asyncio.gather(*(ServerStore.open(store_url) for _ in range(3)))
        try:
            rows = await _dump(stores[0], "schema_migrations")
            assert len(rows) == LATEST
        finally:
            for opened in stores:
                await opened.close()


class TestErrors:
    async def test_not_a_database(self, tmp_path: Path) -> None:
        bad = tmp_path / "server.db"
        bad.write_bytes(b"this is not sqlite at all" * 100)
        with pytest.raises(StoreError, match="not a usable grizz-server database"):
            await ServerStore.open(f"sqlite:///{bad}")
        assert bad.read_bytes() == b"this is not sqlite at all" * 100

    async def test_missing_directory(self, tmp_path: Path) -> None:
        with pytest.raises(StoreError, match="directory does not exist"):
            await ServerStore.open(f"sqlite:///{tmp_path}/nope/server.db")

    @pytest.mark.parametrize(
        "url", ["mysql://x@y/z", "not a url", "sqlite://", "redis://x"]
    )
    async def test_unsupported_urls(self, url: str) -> None:
        with pytest.raises(StoreError, match=r"URL|file"):
            await ServerStore.open(url)

    async def test_unreachable_postgres_is_one_sentence(self) -> None:
        import socket

        # bound, never listening, and held: refused, and no other process of
        # a parallel run can take the port meanwhile
        with socket.socket() as sock, pytest.raises(StoreError) as info:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
            await ServerStore.open(f"postgresql://postgres:secretpw@127.0.0.1:{port}/x")
        message = str(info.value)
        assert message.startswith(f"Cannot reach PostgreSQL at 127.0.0.1:{port}/x")
        assert "secretpw" not in message and "\n" not in message


class TestDefaultUrl:
    def test_under_grizz_home(self, grizz_home: Path) -> None:
        assert default_db_url() == f"sqlite:///{grizz_home / 'server.db'}"

    def test_env_wins(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("GRIZZ_SERVER_DB_URL", "postgresql://u@h/db")
        assert default_db_url() == "postgresql://u@h/db"

    async def test_default_location_is_created(self, grizz_home: Path) -> None:
        (grizz_home).rmdir()
        store = await ServerStore.open(default_db_url())
        await store.close()
        assert (grizz_home / "server.db").is_file()


class TestSqliteCheckpoints:
    async def test_wal_is_checkpointed_off_the_event_loop(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import asyncio

        from grizz_server.store import sqlite_backend as backend_module

        monkeypatch.setattr(backend_module, "CHECKPOINT_EVERY", 10)
        path = tmp_path / "server.db"
        store = await ServerStore.open(f"sqlite:///{path}")
        try:
            empty = path.stat().st_size
            user = store.for_user((await store.add_user("alice")).id)
            for i in range(25):
                await user.remember(f"note {i} " + "x" * 2000)
            task = store._backend._checkpoint  # type: ignore[attr-defined]
            assert task is not None
            await asyncio.wait_for(task, 10)
            assert path.stat().st_size > empty + 20 * 2000  # copied into the file
            assert len(await user.list_memory()) == 25
        finally:
            await store.close()


class TestSqliteLocking:
    """Another process holding SQLite's write lock never blocks the event loop."""

    async def test_writer_waits_without_blocking_the_loop(self, tmp_path: Path) -> None:
        import asyncio
        import sqlite3

        path = tmp_path / "server.db"
        store = await ServerStore.open(f"sqlite:///{path}")
        other = sqlite3.connect(path, isolation_level=None)  # "another process"
        try:
            user = store.for_user((await store.add_user("alice")).id)
            other.execute("BEGIN IMMEDIATE")
            write = asyncio.create_task(user.remember("waited for the lock"))
            ticks = 0
            for _ in range(10):  # the loop keeps running while the write waits
                await asyncio.sleep(0.01)
                ticks += 1
            assert ticks == 10 and not write.done()
            other.execute("COMMIT")
            note = await asyncio.wait_for(write, 5)
            assert [m.id for m in await user.list_memory()] == [note.id]
        finally:
            other.close()
            await store.close()

    async def test_a_lock_held_too_long_is_one_clear_error(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import sqlite3

        from grizz_server.store import sqlite_backend as backend_module

        monkeypatch.setattr(backend_module, "LOCK_WAIT_S", 0.2)
        path = tmp_path / "server.db"
        store = await ServerStore.open(f"sqlite:///{path}")
        other = sqlite3.connect(path, isolation_level=None)
        try:
            user = store.for_user((await store.add_user("alice")).id)
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(StoreError, match="locked"):
                await user.remember("never stored")
            other.execute("ROLLBACK")
            assert await user.list_memory() == []
            await user.remember("stored now")  # the store recovers
            assert len(await user.list_memory()) == 1
        finally:
            other.close()
            await store.close()


class TestSqliteGroupCommit:
    """Writers of one event-loop turn share a transaction, each in its own
    savepoint, and return only after its COMMIT."""

    async def test_writers_of_one_turn_share_a_commit(self, tmp_path: Path) -> None:
        import asyncio

        path = tmp_path / "server.db"
        store = await ServerStore.open(f"sqlite:///{path}")
        try:
            user = store.for_user((await store.add_user("alice")).id)
            before = store._backend.transactions  # type: ignore[attr-defined]
            notes = await asyncio.gather(*(user.remember(f"n{i}") for i in range(20)))
            assert store._backend.transactions - before <= 2  # type: ignore[attr-defined]
            # committed by the time they returned: another connection sees them
            other = sqlite3.connect(path)
            try:
                seqs = sorted(
                    r[0] for r in other.execute("SELECT seq FROM memory").fetchall()
                )
            finally:
                other.close()
            assert seqs == list(range(1, 21))
            assert {n.id for n in notes} == {n.id for n in await user.list_memory()}
        finally:
            await store.close()

    async def test_one_failing_writer_leaves_the_others(self, tmp_path: Path) -> None:
        import asyncio

        store = await ServerStore.open(f"sqlite:///{tmp_path / 'server.db'}")
        try:
            user = store.for_user((await store.add_user("alice")).id)
            conv = await user.ensure_day("2026-11-23", "UTC")
            results = await asyncio.gather(
                user.add_message(conversation_id=conv, role=Role.USER, content="a"),
                user.add_message(conversation_id="nope", role=Role.USER, content="b"),
                user.forget("no-such-note"),  # changes nothing: Discard
                user.add_message(conversation_id=conv, role=Role.USER, content="c"),
                return_exceptions=True,
            )
            assert isinstance(results[1], StoreError)
            assert results[2] is None
            stored = await user.recent_messages(conv, limit=10)
            assert sorted(m.content for m in stored) == ["a", "c"]
            # the refused and discarded writers gave their numbers back
            assert await user.current_seq() == 3
        finally:
            await store.close()

    async def test_the_same_message_twice_in_one_turn_is_one_message(
        self, tmp_path: Path
    ) -> None:
        """A device re-sends a message at once: the second writer finds the
        first one's row not yet committed, and still gets the message."""
        import asyncio

        store = await ServerStore.open(f"sqlite:///{tmp_path / 'server.db'}")
        try:
            user = store.for_user((await store.add_user("alice")).id)
            conv = await user.ensure_day("2026-11-23", "UTC")
            first, second = await asyncio.gather(
                *(
                    user.add_message(
                        conversation_id=conv,
                        role=Role.USER,
                        content="same",
                        message_id="m1",
                    )
                    for _ in range(2)
                )
            )
            assert first == second
            assert [m.id for m in await user.recent_messages(conv, limit=5)] == ["m1"]
        finally:
            await store.close()

    async def test_a_refused_commit_fails_the_whole_group(self, tmp_path: Path) -> None:
        """A COMMIT SQLite refuses (here a deferred foreign key) stores none of
        the group's writes, fails each of its writers, and the next write works."""
        import asyncio

        store = await ServerStore.open(f"sqlite:///{tmp_path / 'server.db'}")
        backend = store._backend
        try:
            user = store.for_user((await store.add_user("alice")).id)
            conv = await user.ensure_day("2026-11-23", "UTC")

            async def dangling() -> None:
                async with backend.write() as conn:
                    await conn.run_sync(
                        lambda sync: sync.exec_driver_sql(
                            "PRAGMA defer_foreign_keys = ON"
                        )
                    )
                    await conn.execute(
                        text(
                            "INSERT INTO messages (user_id, id, conversation_id, "
                            "role, content, status, model, metadata, created_at, "
                            "updated_at, deleted, seq, has_attachments) VALUES "
                            "(:u, 'x', 'no-such-day', 'user', 'x', 'complete', '', "
                            "'{}', 't', 't', 0, 99, 0)"
                        ),
                        {"u": user.user_id},
                    )

            results = await asyncio.gather(
                user.add_message(conversation_id=conv, role=Role.USER, content="a"),
                dangling(),
                return_exceptions=True,
            )
            assert all(isinstance(r, StoreError) for r in results), results
            assert "FOREIGN KEY" in str(results[1])
            assert await user.recent_messages(conv, limit=10) == []
            assert await user.current_seq() == 1  # only the day
            again = await user.add_message(
                conversation_id=conv, role=Role.USER, content="b"
            )
            assert [m.id for m in await user.recent_messages(conv, limit=10)] == [
                again.id
            ]
        finally:
            await store.close()

    async def test_a_cancelled_writer_does_not_stop_the_others(
        self, tmp_path: Path
    ) -> None:
        """The first writer of a group is cancelled while the group waits for
        another process's lock: the others still write."""
        import asyncio

        path = tmp_path / "server.db"
        store = await ServerStore.open(f"sqlite:///{path}")
        other = sqlite3.connect(path, isolation_level=None)
        try:
            backend = store._backend
            assert isinstance(backend, SqliteBackend)
            user = store.for_user((await store.add_user("alice")).id)
            other.execute("BEGIN IMMEDIATE")

            def waiting(writers: int) -> bool:
                """A group, still waiting for the lock, holds `writers` writers."""
                group = backend._group
                return (
                    group is not None and not group.open and (group.pending == writers)
                )

            first = asyncio.create_task(user.remember("cancelled"))
            await until(lambda: waiting(1), what="the first writer's group")
            rest = [asyncio.create_task(user.remember(f"kept {i}")) for i in range(3)]
            await until(lambda: waiting(4), what="the others to join it")
            first.cancel()
            await until(lambda: first.done() and waiting(3), what="the cancel")
            other.execute("COMMIT")
            kept = await asyncio.wait_for(asyncio.gather(*rest), 5)
            with contextlib.suppress(asyncio.CancelledError):
                await first
            notes = {n.content for n in await user.list_memory()}
            assert {k.content for k in kept} <= notes
            assert notes - {"cancelled"} == {"kept 0", "kept 1", "kept 2"}
        finally:
            other.close()
            await store.close()


async def test_unknown_user_id_cannot_write(store: ServerStore) -> None:
    ghost = store.for_user("no-such-user")
    with pytest.raises(StoreError, match="no user with id"):
        await ghost.remember("x")
    with pytest.raises(StoreError, match="no user with id"):
        await ghost.ensure_day("2026-11-23", "UTC")
    assert await ghost.push([]) == []
    assert await ghost.current_seq() == 0
