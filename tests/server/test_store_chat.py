"""UserStore as the core's ChatStore, and strict per-user isolation.

Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from sqlalchemy import text

from grizz_core import days
from grizz_core.companion.session import ChatSession, ReplyFinished, ToolUsed
from grizz_core.domain import Attachment, Role, Status, day_conversation_id
from grizz_core.providers.openai_compat import OpenAICompatProvider
from grizz_server.store import ServerStore, StoreError, UserStore
from tests.fakes.openai_server import FakeOpenAI, Text, ToolCalls

DAY = "2026-11-23"


def image(name: str, data: bytes) -> Attachment:
    return Attachment(
        id=f"att-{name}",
        message_id="",
        name=name,
        mime="image/png",
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        content=data,
    )


async def user_store(store: ServerStore, name: str) -> UserStore:
    return store.for_user((await store.add_user(name)).id)


class TestConversationsAndMessages:
    async def test_ensure_day_is_idempotent(self, store: ServerStore) -> None:
        alice = await user_store(store, "alice")
        ids = await asyncio.gather(*(alice.ensure_day(DAY, "UTC") for _ in range(5)))
        assert set(ids) == {day_conversation_id(DAY)}
        assert await alice.current_seq() == 1
        again = ServerStore.for_user(store, alice.user_id)
        assert await again.ensure_day(DAY, "UTC") == ids[0]
        assert await alice.current_seq() == 1

    async def test_messages_and_attachments(self, store: ServerStore) -> None:
        alice = await user_store(store, "alice")
        conv = await alice.ensure_day(DAY, "UTC")
        pics = [
            image("b.png", b"\x89PNG" + bytes(range(256)) * 50),
            image("a.png", b"\0\1"),
        ]
        sent = await alice.add_message(
            conversation_id=conv,
            role=Role.USER,
            content="look",
            message_id="m1",
            attachments=pics,
        )
        assert (sent.id, sent.content, sent.status) == ("m1", "look", Status.COMPLETE)
        stored = await alice.attachments_of("m1")
        assert [(a.name, a.content, a.message_id) for a in stored] == [
            ("b.png", pics[0].content, "m1"),
            ("a.png", b"\0\1", "m1"),
        ]
        assert await alice.attachments_of("nope") == []

    async def test_add_message_is_idempotent_by_id(self, store: ServerStore) -> None:
        alice = await user_store(store, "alice")
        conv = await alice.ensure_day(DAY, "UTC")
        first = await alice.add_message(
            conversation_id=conv, role=Role.USER, content="hi", message_id="m1"
        )
        seq = await alice.current_seq()
        again = await alice.add_message(
            conversation_id=conv, role=Role.USER, content="hi", message_id="m1"
        )
        assert again == first and await alice.current_seq() == seq
        with pytest.raises(StoreError, match="already used"):
            await alice.add_message(
                conversation_id=conv,
                role=Role.USER,
                content="different",
                message_id="m1",
            )

    async def test_unknown_conversation_is_refused(self, store: ServerStore) -> None:
        alice = await user_store(store, "alice")
        with pytest.raises(StoreError, match="does not exist"):
            await alice.add_message(conversation_id="nope", role=Role.USER, content="x")
        with pytest.raises(StoreError, match="does not exist"):
            await alice.start_reply(
                reply_id="r", conversation_id="nope", model="m", metadata={}
            )
        assert await alice.current_seq() == 0

    async def test_start_reply_reuses_the_row(self, store: ServerStore) -> None:
        alice = await user_store(store, "alice")
        conv = await alice.ensure_day(DAY, "UTC")
        await alice.add_message(
            conversation_id=conv, role=Role.USER, content="q", message_id="q1"
        )
        reply = await alice.start_reply(
            reply_id="r1", conversation_id=conv, model="m", metadata={"attempt": 1}
        )
        assert (reply.status, reply.content, reply.role) == (
            Status.STREAMING,
            "",
            Role.ASSISTANT,
        )
        await alice.update_message("r1", content="half")
        again = await alice.start_reply(
            reply_id="r1", conversation_id=conv, model="m2", metadata={"attempt": 2}
        )
        assert (again.content, again.model, again.metadata) == (
            "",
            "m2",
            {"attempt": 2},
        )
        assert again.created_at == reply.created_at
        await alice.update_message(
            "r1",
            content="whole",
            status=Status.COMPLETE,
            metadata={"usage": {"total": 3}, "attempt": None},
        )
        done = await alice.get_message("r1")
        assert done is not None
        assert (done.content, done.status) == ("whole", Status.COMPLETE)
        assert done.metadata == {"usage": {"total": 3}}  # merge patch: None removes
        listed = await alice.recent_messages(conv, limit=10)
        assert [m.id for m in listed] == ["r1", "q1"]

    async def test_reply_id_cannot_take_over_a_user_message(
        self, store: ServerStore
    ) -> None:
        alice = await user_store(store, "alice")
        conv = await alice.ensure_day(DAY, "UTC")
        await alice.add_message(
            conversation_id=conv, role=Role.USER, content="mine", message_id="q1"
        )
        with pytest.raises(StoreError, match="already used"):
            await alice.start_reply(
                reply_id="q1", conversation_id=conv, model="m", metadata={}
            )
        kept = await alice.get_message("q1")
        assert kept is not None and kept.content == "mine"

    async def test_update_of_a_missing_message_changes_nothing(
        self, store: ServerStore
    ) -> None:
        alice = await user_store(store, "alice")
        await alice.update_message("ghost", content="x", metadata={"a": 1})
        assert await alice.current_seq() == 0
        assert await alice.get_message("ghost") is None

    async def test_recent_and_previous_day(self, store: ServerStore) -> None:
        alice = await user_store(store, "alice")
        old = await alice.ensure_day("2026-11-20", "UTC")
        await alice.ensure_day("2026-11-21", "UTC")  # a day with no messages
        today = await alice.ensure_day(DAY, "UTC")
        await alice.add_message(conversation_id=old, role=Role.USER, content="old one")
        for i in range(5):
            await alice.add_message(
                conversation_id=today,
                role=Role.USER,
                content=f"t{i}",
                message_id=f"t{i}",
            )
        recent = await alice.recent_messages(today, limit=3, exclude=["t4"])
        assert [m.id for m in recent] == ["t3", "t2", "t1"]
        day, msgs = await alice.previous_day(DAY)
        assert day == "2026-11-20" and [m.content for m in msgs] == ["old one"]
        assert await alice.previous_day("2026-11-20") == ("", [])

    async def test_context_reads_use_their_indexes(self, store: ServerStore) -> None:
        """A worker reads a day's newest messages on every reply: ties on
        created_at come newest id first and deleted rows stay out; on SQLite
        the whole read walks one index in order (migration 3) and the
        catch-up read walks the user's change numbers."""
        alice = await user_store(store, "alice")
        today = await alice.ensure_day(DAY, "UTC")
        async with store._backend.write() as conn:
            for name in ("a", "c", "b"):
                await conn.execute(
                    text(
                        "INSERT INTO messages (user_id, id, conversation_id, role, "
                        "content, status, model, metadata, created_at, updated_at, "
                        "deleted, seq, has_attachments) VALUES (:u, :id, :c, 'user', "
                        ":id, 'complete', '', '{}', '2026-11-23T10:00:00+00:00', "
                        "'2026-11-23T10:00:00+00:00', :d, :s, 0)"
                    ),
                    {
                        "u": alice.user_id,
                        "id": name,
                        "c": today,
                        "d": int(name == "b"),
                        "s": 100 + ord(name),
                    },
                )
        assert [m.id for m in await alice.recent_messages(today, limit=5)] == [
            "c",
            "a",
        ]
        if store.dialect != "sqlite":
            return
        from grizz_server.store import statements as q
        from grizz_server.store.backend import compiled

        async def plan(statement: object, args: tuple[object, ...]) -> str:
            sql = compiled(statement, "sqlite")[0]
            async with store._backend.read() as conn:
                rows = await conn.run_sync(
                    lambda sync: sync.exec_driver_sql(
                        f"EXPLAIN QUERY PLAN {sql}", args
                    ).fetchall()
                )
            return " | ".join(str(row[-1]) for row in rows)

        whole = await plan(q.recent_messages, (alice.user_id, today, 0, 5, 0))
        assert "INDEX messages_by_conversation_live" in whole, whole
        assert "TEMP B-TREE" not in whole, whole
        since = await plan(q.messages_changed_since, (alice.user_id, 0, 64, 0))
        assert "INDEX messages_by_seq (user_id=? AND seq>?)" in since, since
        assert "TEMP B-TREE" not in since, since


class TestMemory:
    async def test_remember_recall_forget(self, store: ServerStore) -> None:
        alice = await user_store(store, "alice")
        tea = await alice.remember("Likes green tea in the morning", title="Tea")
        await alice.remember("Sister is called Ada")
        await alice.remember("Runs 5km on Sundays 100%_sure")
        found = await alice.recall("what tea does she like?")
        assert [m.id for m in found] == [tea.id]
        assert await alice.recall("the and of") == []
        assert await alice.recall("%") == []
        assert [m.content for m in await alice.recall("100%_sure")] == [
            "Runs 5km on Sundays 100%_sure"
        ]
        relevant = await alice.relevant_memories("tea", limit=2)
        assert relevant[0].id == tea.id and len(relevant) == 2
        forgotten = await alice.forget(tea.id[:8])
        assert forgotten is not None and forgotten.id == tea.id
        assert await alice.recall("tea") == []
        assert await alice.forget(tea.id) is None
        assert await alice.forget("abc") is None  # too short

    async def test_forget_needs_a_unique_prefix(self, store: ServerStore) -> None:
        alice = await user_store(store, "alice")
        notes = [await alice.remember(f"note {i}") for i in range(2)]
        async with store._backend.write() as conn:
            for i, note in enumerate(notes):
                await conn.execute(
                    text("UPDATE memory SET id = :new WHERE id = :old"),
                    {"new": f"dead{i}", "old": note.id},
                )
        assert await alice.forget("dead") is None
        forgotten = await alice.forget("dead1")
        assert forgotten is not None and forgotten.content == "note 1"


class TestIsolation:
    """Bob uses the same ids as Alice everywhere; neither ever sees the other."""

    async def _alice_data(self, alice: UserStore) -> str:
        conv = await alice.ensure_day(DAY, "UTC")
        await alice.add_message(
            conversation_id=conv,
            role=Role.USER,
            content="alice secret",
            message_id="m1",
            attachments=[image("a.png", b"alice")],
        )
        await alice.start_reply(
            reply_id="r1", conversation_id=conv, model="m", metadata={}
        )
        await alice.update_message("r1", content="alice reply", status=Status.COMPLETE)
        note = await alice.remember("alice secret note", title="secret")
        return note.id

    async def test_every_method_is_scoped(
        self, two_users: tuple[UserStore, UserStore]
    ) -> None:
        alice, bob = two_users
        note_id = await self._alice_data(alice)
        alice_pull = await alice.pull(0)
        # Bob sees nothing of Alice's.
        assert await bob.get_message("m1") is None
        assert await bob.attachments_of("m1") == []
        conv = day_conversation_id(DAY)
        assert await bob.recent_messages(conv, limit=10) == []
        assert await bob.previous_day("2999-01-01") == ("", [])
        assert await bob.recall("secret") == []
        assert await bob.relevant_memories("secret", limit=5) == []
        assert await bob.forget(note_id) is None
        assert await bob.pull(0) == ([], 0, False)
        assert await bob.current_seq() == 0
        # Bob cannot write into Alice's rows, even with her ids.
        await bob.update_message("m1", content="bob was here", status=Status.ERROR)
        with pytest.raises(StoreError):
            await bob.add_message(conversation_id=conv, role=Role.USER, content="x")
        with pytest.raises(StoreError):
            await bob.start_reply(
                reply_id="r1", conversation_id=conv, model="m", metadata={}
            )
        results = await bob.push(
            [
                {
                    "entity": "messages",
                    "id": "m1",
                    "data": {
                        "conversation_id": conv,
                        "role": "user",
                        "content": "bob",
                        "created_at": "2026-11-23T10:00:00+00:00",
                    },
                },
                {
                    "entity": "memory",
                    "id": note_id,
                    "data": {
                        "content": "bob",
                        "deleted": 1,
                        "created_at": "2030-01-01T00:00:00+00:00",
                    },
                },
            ]
        )
        assert results[0]["status"] == "rejected" and "unknown" in results[0]["error"]
        assert results[1]["status"] == "applied"  # Bob's own note, same id as Alice's
        # Bob's own day, with the same ids as Alice's, is his alone.
        assert await bob.ensure_day(DAY, "UTC") == conv
        await bob.add_message(
            conversation_id=conv,
            role=Role.USER,
            content="bob's",
            message_id="m1",
            attachments=[image("a.png", b"bob")],
        )
        assert [a.content for a in await bob.attachments_of("m1")] == [b"bob"]
        # Alice's data is exactly as it was.
        assert await alice.pull(0) == alice_pull
        mine = await alice.get_message("m1")
        assert mine is not None and mine.content == "alice secret"
        assert [a.content for a in await alice.attachments_of("m1")] == [b"alice"]
        assert [m.content for m in await alice.recall("secret")] == [
            "alice secret note"
        ]
        assert await bob.recall("bob") == []  # his own note is a tombstone
        assert [m.content for m in await alice.list_memory()] == ["alice secret note"]
        assert await bob.list_memory() == []
        assert {c["id"] for c in (await bob.pull(0))[0]} == {conv, "m1", note_id}

    async def test_users_have_separate_sequences(
        self, two_users: tuple[UserStore, UserStore]
    ) -> None:
        alice, bob = two_users
        await alice.ensure_day(DAY, "UTC")
        await alice.remember("a")
        await bob.remember("b")
        assert (await alice.current_seq(), await bob.current_seq()) == (2, 1)


class TestWithTheCore:
    """The real ChatSession (as a worker runs it) over the server store."""

    async def test_reply_stored_once_across_redelivery(
        self, store: ServerStore, fake_openai: FakeOpenAI
    ) -> None:
        alice = await user_store(store, "alice")
        provider = OpenAICompatProvider(
            base_url=fake_openai.base_url, model="fake-model", max_retries=0, timeout=5
        )
        session = ChatSession(alice, provider, tz="UTC")
        conv = await alice.ensure_day(days.today("UTC"), "UTC")
        question = await alice.add_message(
            conversation_id=conv,
            role=Role.USER,
            content="my cat is Miso",
            message_id="q1",
        )
        fake_openai.enqueue(
            ToolCalls([("remember", {"content": "Their cat is called Miso"})]),
            Text("Noted, Miso!"),
            Text("Noted again, Miso!"),
        )
        try:
            events = [e async for e in session.respond(question, reply_id="job-r1")]
            assert any(isinstance(e, ToolUsed) for e in events)
            assert isinstance(events[-1], ReplyFinished)
            # The job is delivered again: the same reply row is rewritten.
            events = [e async for e in session.respond(question, reply_id="job-r1")]
        finally:
            await provider.aclose()
        messages = await alice.recent_messages(conv, limit=10)
        assert [(m.id, m.role) for m in messages] == [
            ("job-r1", Role.ASSISTANT),
            ("q1", Role.USER),
        ]
        assert (messages[0].content, messages[0].status) == (
            "Noted again, Miso!",
            Status.COMPLETE,
        )
        assert [m.content for m in await alice.recall("Miso")] == [
            "Their cat is called Miso"
        ]
        second_context = fake_openai.requests[-1]["messages"]
        assert "Their cat is called Miso" in second_context[0]["content"]


class TestRowCache:
    """Records built once are reused, but never once the row has changed."""

    async def test_other_process_writes_are_seen(
        self, store: ServerStore, store_url: str
    ) -> None:
        alice = await user_store(store, "alice")
        conv = await alice.ensure_day(DAY, "UTC")
        for i in range(30):
            await alice.add_message(
                conversation_id=conv,
                role=Role.USER,
                content=f"m{i}",
                message_id=f"m{i}",
            )
        first = await alice.recent_messages(conv, limit=25)
        assert await alice.recent_messages(conv, limit=25) == first
        other = await ServerStore.open(store_url)  # another pool: another process
        try:
            theirs = other.for_user(alice.user_id)
            await theirs.update_message("m29", content="edited elsewhere")
            await theirs.push(
                [
                    {
                        "entity": "messages",
                        "id": "m28",
                        "data": {
                            **(await theirs.get_message("m28")).to_dict(),  # type: ignore[union-attr]
                            "deleted": True,
                            "updated_at": "2999-01-01T00:00:00+00:00",
                        },
                    }
                ]
            )
            for i in range(30, 50):  # more changes than the cache patches one by one
                await theirs.add_message(
                    conversation_id=conv,
                    role=Role.USER,
                    content=f"m{i}",
                    message_id=f"m{i}",
                )
        finally:
            await other.close()
        assert [m.content for m in await alice.recent_messages(conv, limit=3)] == [
            "m49",
            "m48",
            "m47",
        ]
        again = await alice.recent_messages(conv, limit=50, exclude=["m0"])
        contents = [m.content for m in again]
        assert "edited elsewhere" in contents and "m28" not in contents
        assert "m0" not in contents and len(again) == 48
        edited = await alice.get_message("m29")
        assert edited is not None and edited.content == "edited elsewhere"
