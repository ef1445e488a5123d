"""UserStore.push / pull: idempotence, last-writer-wins, tombstones, pagination,
bad data, and concurrent writers (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grizz_core.domain import Role, day_conversation_id, utc_now
from grizz_core.errors import UsageError
from grizz_server.store import ServerStore, UserStore

DAY = "2026-11-23"
CONV = day_conversation_id(DAY)


def ts(second: int, micro: int = 0) -> str:
    return f"2026-11-23T10:00:{second:02d}.{micro:06d}+00:00"


def conversation(day: str = DAY, **data: Any) -> dict[str, Any]:
    return {
        "entity": "conversations",
        "id": day_conversation_id(day),
        "data": {"day": day, "tz": "UTC", "created_at": ts(0), **data},
    }


def message(mid: str, content: str = "hi", **data: Any) -> dict[str, Any]:
    return {
        "entity": "messages",
        "id": mid,
        "data": {
            "conversation_id": CONV,
            "role": "user",
            "content": content,
            "created_at": ts(1),
            **data,
        },
    }


def note(nid: str, content: str, updated: str, **data: Any) -> dict[str, Any]:
    return {
        "entity": "memory",
        "id": nid,
        "data": {
            "content": content,
            "created_at": ts(0),
            "updated_at": updated,
            **data,
        },
    }


def statuses(results: list[dict[str, Any]]) -> list[str]:
    return [r["status"] for r in results]


async def everything(user: UserStore) -> dict[tuple[str, str], dict[str, Any]]:
    changes, _, more = await user.pull(0, limit=1000)
    assert not more
    return {(c["entity"], c["id"]): c["data"] for c in changes}


@pytest.fixture
async def alice(store: ServerStore) -> UserStore:
    return store.for_user((await store.add_user("alice")).id)


class TestPush:
    async def test_same_batch_twice_changes_nothing(self, alice: UserStore) -> None:
        pic = b"\x89PNG fake"
        batch = [
            conversation(title="Saturday"),
            message(
                "m1",
                metadata={"b": [1, 2], "a": "x"},
                attachments=[
                    {
                        "id": "att1",
                        "name": "p.png",
                        "mime": "image/png",
                        "content_b64": base64.b64encode(pic).decode(),
                        "sha256": hashlib.sha256(pic).hexdigest(),
                    }
                ],
            ),
            message("m2", role="assistant", status="complete", model="gpt"),
            note("n1", "likes tea", ts(5)),
        ]
        assert statuses(await alice.push(batch)) == ["applied"] * 4
        seq = await alice.current_seq()
        assert seq == 4
        assert statuses(await alice.push(batch)) == ["unchanged"] * 4
        assert await alice.current_seq() == seq
        assert await alice.pull(seq) == ([], seq, False)
        assert [a.content for a in await alice.attachments_of("m1")] == [pic]

    async def test_what_pull_returns_pushes_back_unchanged(
        self, alice: UserStore
    ) -> None:
        await alice.ensure_day(DAY, "UTC")
        await alice.add_message(
            conversation_id=CONV,
            role=Role.USER,
            content="hé 🐻",
            metadata={"k": {"z": 1, "a": None}},
        )
        await alice.remember("a note", title="t")
        changes, cursor, _ = await alice.pull(0)
        echoed = [
            {"entity": c["entity"], "id": c["id"], "data": c["data"]} for c in changes
        ]
        assert statuses(await alice.push(echoed)) == ["unchanged"] * 3
        assert await alice.current_seq() == cursor

    async def test_messages_are_append_only(self, alice: UserStore) -> None:
        await alice.push([conversation(), conversation("2026-11-24"), message("m1")])
        moved = message(
            "m1", conversation_id=day_conversation_id("2026-11-24"), updated_at=ts(9)
        )
        recast = message("m1", role="assistant", updated_at=ts(9))
        results = await alice.push([moved, recast])
        assert statuses(results) == ["rejected", "rejected"]
        assert "append-only" in results[0]["error"]
        newer = message("m1", "edited", updated_at=ts(9), status="interrupted")
        older = message("m1", "stale", updated_at=ts(2))
        # the stale edit lost (issue 12: `superseded`, no longer `unchanged`)
        assert statuses(await alice.push([newer, older])) == ["applied", "superseded"]
        stored = await alice.get_message("m1")
        assert stored is not None and (stored.content, stored.status) == (
            "edited",
            "interrupted",
        )
        assert stored.created_at == ts(1)

    async def test_tombstones(self, alice: UserStore) -> None:
        await alice.push([conversation(), message("m1"), note("n1", "x", ts(1))])
        assert statuses(
            await alice.push(
                [
                    message("m1", deleted=True, updated_at=ts(5)),
                    note("n1", "x", ts(5), deleted=1),
                ]
            )
        ) == ["applied", "applied"]
        assert await alice.recent_messages(CONV, limit=5) == []
        assert await alice.recall("x") == [] and await alice.list_memory() == []
        # A message tombstone is final, even against a newer live version.
        await alice.push([message("m1", "back", updated_at=ts(30))])
        data = (await everything(alice))[("messages", "m1")]
        assert data["deleted"] is True and data["content"] == "back"
        # A memory note can be restored by a newer write (the app's undo).
        await alice.push([note("n1", "x", ts(30), deleted=0)])
        assert [m.id for m in await alice.list_memory()] == ["n1"]

    async def test_batch_order_does_not_matter(self, alice: UserStore) -> None:
        results = await alice.push([message("m1"), conversation()])
        assert statuses(results) == ["applied", "applied"]

    async def test_same_row_twice_in_a_batch(self, alice: UserStore) -> None:
        results = await alice.push(
            [
                note("n1", "first", ts(1)),
                note("n1", "second", ts(2)),
                note("n1", "zero", ts(0)),
            ]
        )
        assert statuses(results) == ["applied", "applied", "superseded"]
        assert await alice.current_seq() == 1  # one row written: one change number
        assert (await everything(alice))[("memory", "n1")]["content"] == "second"


class TestLastWriterWins:
    async def test_newer_wins_older_is_ignored(self, alice: UserStore) -> None:
        await alice.push([note("n1", "v2", ts(2))])
        lost = await alice.push([note("n1", "v1", ts(1))])
        assert statuses(lost) == ["superseded"] and lost[0]["updated_at"] == ts(2)
        assert statuses(await alice.push([note("n1", "v3", ts(3))])) == ["applied"]
        assert [m.content for m in await alice.list_memory()] == ["v3"]

    async def test_offsets_are_compared_as_instants(self, alice: UserStore) -> None:
        await alice.push([note("n1", "utc", "2026-11-23T10:00:00+00:00")])
        # 11:30+02:00 is 09:30 UTC: older, although its text sorts higher.
        assert statuses(
            await alice.push([note("n1", "berlin", "2026-11-23T11:30:00+02:00")])
        ) == ["superseded"]

    async def test_the_same_data_again_is_unchanged_not_superseded(
        self, alice: UserStore
    ) -> None:
        await alice.push([note("n1", "v2", ts(2))])
        # the same note with an older time says nothing new
        assert statuses(await alice.push([note("n1", "v2", ts(1))])) == ["unchanged"]

    async def test_a_far_future_edit_cannot_freeze_a_row(
        self, alice: UserStore
    ) -> None:
        wrong_clock = "2099-01-01T00:00:00.000000+00:00"
        before = utc_now()
        results = await alice.push([note("n1", "from the future", wrong_clock)])
        assert statuses(results) == ["applied"]
        stored = (await everything(alice))[("memory", "n1")]["updated_at"]
        assert before < stored < "2027-01-01"  # the server's time plus the skew
        # pushing it again does not move it: still the same edit
        again = await alice.push([note("n1", "from the future", wrong_clock)])
        assert statuses(again) == ["unchanged"]
        assert (await everything(alice))[("memory", "n1")]["updated_at"] == stored
        # with no skew allowed the row is stamped now, so an edit made after
        # that by a device with a right clock wins
        await alice.push([note("n2", "future", wrong_clock)], max_skew_s=0)
        fixed = await alice.push([note("n2", "fixed", utc_now())], max_skew_s=0)
        assert statuses(fixed) == ["applied"]
        assert (await everything(alice))[("memory", "n2")]["content"] == "fixed"

    async def test_a_losing_edit_is_superseded_with_the_winners_time(
        self, alice: UserStore
    ) -> None:
        await alice.push(
            [conversation(), conversation(title="Newer", updated_at=ts(9))]
        )
        lost = await alice.push([conversation(title="Older", updated_at=ts(3))])
        assert lost == [
            {
                "id": CONV,
                "entity": "conversations",
                "status": "superseded",
                "updated_at": ts(9),
            }
        ]

    async def test_ties_resolve_the_same_in_any_order(self, store: ServerStore) -> None:
        versions = [note("n1", text, ts(7)) for text in ("apple", "pear", "fig")]
        finals = set()
        for order in ([0, 1, 2], [2, 1, 0], [1, 0, 2]):
            user = store.for_user(
                (await store.add_user(f"u{''.join(map(str, order))}")).id
            )
            for i in order:
                await user.push([versions[i]])
            finals.add((await everything(user))[("memory", "n1")]["content"])
        assert len(finals) == 1

    @settings(
        max_examples=15,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(st.data())
    async def test_devices_converge(
        self, store: ServerStore, data: st.DataObject
    ) -> None:
        """Two devices push the same edits in different orders and batchings."""
        edits = data.draw(
            st.lists(
                st.tuples(
                    st.sampled_from(["n1", "n2"]),
                    st.integers(0, 3),
                    st.sampled_from(["a", "b", "c"]),
                    st.booleans(),
                ),
                min_size=1,
                max_size=8,
            )
        )
        changes = [
            note(nid, text, ts(sec), deleted=dead) for nid, sec, text, dead in edits
        ]
        states = []
        for _ in range(2):
            user = store.for_user(
                (await store.add_user(f"u{len(await store.list_users())}")).id
            )
            shuffled = data.draw(st.permutations(changes))
            cut = data.draw(st.integers(0, len(shuffled)))
            await user.push(shuffled[:cut])
            await user.push(shuffled[cut:])
            await user.push(shuffled)  # redelivery changes nothing
            states.append(
                {
                    k: {f: v for f, v in d.items()}
                    for k, d in (await everything(user)).items()
                }
            )
        assert states[0] == states[1]


class TestPull:
    async def test_pages_cover_everything_once(self, alice: UserStore) -> None:
        await alice.push([conversation()])
        for i in range(12):
            await alice.push([message(f"m{i:02d}"), note(f"n{i:02d}", "x", ts(i))])
        await alice.push(
            [note("n03", "rewritten", ts(59))]
        )  # supersedes an earlier change
        seen: list[tuple[int, str]] = []
        cursor, pages, more = 0, 0, True
        while more:
            page, cursor, more = await alice.pull(cursor, limit=5)
            assert len(page) <= 5
            seen += [(c["seq"], c["id"]) for c in page]
            pages += 1
        assert pages == 5 and cursor == await alice.current_seq() == 26
        assert [s for s, _ in seen] == sorted(s for s, _ in seen)
        ids = [i for _, i in seen]
        assert len(ids) == len(set(ids)) == 25
        assert ids[-1] == "n03"

    async def test_pages_fit_a_byte_budget(self, alice: UserStore) -> None:
        await alice.push([conversation()])
        await alice.push([message(f"m{i}", "x" * 1000) for i in range(6)])
        await alice.push([message("big", "y" * 5000)])
        seen: list[str] = []
        cursor, more, pages = 0, True, []
        while more:
            page, cursor, more = await alice.pull(cursor, max_bytes=2800)
            pages.append([c["id"] for c in page])
            seen += pages[-1]
        assert seen == [CONV, *(f"m{i}" for i in range(6)), "big"]
        assert pages[-1] == ["big"]  # alone, though larger than the budget
        assert all(len(p) <= 3 for p in pages) and len(pages) >= 4
        assert cursor == await alice.current_seq()

    async def test_bad_cursor(self, alice: UserStore) -> None:
        for bad in (-1, "3", 1.5, None, True):
            with pytest.raises(UsageError, match="cursor"):
                await alice.pull(bad)  # type: ignore[arg-type]
        assert await alice.pull(0, limit=0) == ([], 0, False)

    async def test_the_cursor_never_passes_the_users_own(
        self, alice: UserStore, store: ServerStore
    ) -> None:
        assert await alice.pull(10**12) == ([], 0, False)
        await alice.push([conversation(), message("m1")])
        assert await alice.pull(10**12) == ([], 2, False)
        assert await alice.pull(2) == ([], 2, False)
        bob = store.for_user((await store.add_user("bob")).id)
        await bob.push([conversation(), message("b1"), message("b2")])
        assert await alice.pull(1000) == ([], 2, False)  # alice's, not bob's
        await alice.push([message("m2")])
        page, cursor, _ = await alice.pull(2)
        assert [c["id"] for c in page] == ["m2"] and cursor == 3

    async def test_a_cursor_past_the_databases_integers_is_clamped(
        self, alice: UserStore
    ) -> None:
        await alice.push([conversation(), message("m1")])
        for after in (2**63 - 1, 2**63, 2**64, 10**30):
            assert await alice.pull(after) == ([], 2, False)

    async def test_pull_carries_attachments(self, alice: UserStore) -> None:
        await alice.ensure_day(DAY, "UTC")
        from grizz_core.domain import Attachment

        pic = Attachment(
            id="a1",
            message_id="",
            name="x.png",
            mime="image/png",
            size=3,
            sha256=hashlib.sha256(b"abc").hexdigest(),
            content=b"abc",
        )
        await alice.add_message(
            conversation_id=CONV,
            role=Role.USER,
            content="see",
            message_id="m1",
            attachments=[pic],
        )
        data = (await everything(alice))[("messages", "m1")]
        assert data["attachments"] == [
            {
                "id": "a1",
                "name": "x.png",
                "mime": "image/png",
                "size": 3,
                "sha256": pic.sha256,
                "content_b64": base64.b64encode(b"abc").decode(),
            }
        ]


BAD_CHANGES: list[tuple[Any, str]] = [
    ("not a dict", "must be an object"),
    ({"entity": "users", "id": "x", "data": {}}, "entity must be"),
    ({"entity": "memory", "id": "", "data": {}}, "id must be"),
    ({"entity": "memory", "id": "a b", "data": {}}, "id must be"),
    ({"entity": "memory", "id": "x" * 65, "data": {}}, "id must be"),
    ({"entity": "memory", "id": "x", "data": []}, "data must be"),
    ({"entity": "memory", "id": "x", "data": {"id": "y"}}, "does not match"),
    (note("n", "x", "yesterday"), "updated_at must be an ISO-8601"),
    (note("n", "x", "2026-11-23T10:00:00"), "time zone"),
    (note("n", "nul\x00byte", ts(1)), "NUL"),
    (note("n", "lone \ud800 surrogate", ts(1)), "Unicode"),
    (note("n", 42, ts(1)), "content must be a string"),  # type: ignore[arg-type]
    (note("n", "x" * 1_000_001, ts(1)), "longer than"),
    (note("n", "x", ts(1), properties=[1]), "JSON object"),
    (note("n", "x", ts(1), properties="{not json"), "not valid JSON"),
    (note("n", "x", ts(1), properties={"x": float("nan")}), "plain JSON"),
    (note("n", "x", ts(1), deleted="yes"), "deleted must be"),
    (conversation("2026-02-30"), "real calendar date"),
    ({**conversation(), "id": day_conversation_id("2020-01-01")}, "id of its day"),
    (message("m", role="system"), "role must be"),
    (message("m", status="done"), "status must be"),
    (message("m", conversation_id="nope"), "unknown"),
    (message("m", attachments="pic"), "attachments must be"),
    (
        message(
            "m", attachments=[{"id": "a", "mime": "image/png", "content_b64": "!!"}]
        ),
        "not valid base64",
    ),
    (
        message(
            "m",
            attachments=[
                {
                    "id": "a",
                    "mime": "image/png",
                    "content_b64": "YWJj",
                    "sha256": "0" * 64,
                }
            ],
        ),
        "sha256 does not match",
    ),
]


class TestBadData:
    async def test_each_bad_change_is_rejected_and_the_rest_applies(
        self, alice: UserStore
    ) -> None:
        await alice.push([conversation()])
        batch = [change for change, _ in BAD_CHANGES]
        batch.insert(5, note("good1", "fine", ts(1)))
        batch.append(message("good2"))
        results = await alice.push(batch)
        assert len(results) == len(batch)
        good = [r for r in results if r["id"] in ("good1", "good2")]
        assert statuses(good) == ["applied", "applied"]
        bad = [r for r in results if r["id"] not in ("good1", "good2")]
        for result, (_, reason) in zip(bad, BAD_CHANGES, strict=True):
            assert result["status"] == "rejected", result
            assert reason in result["error"], (reason, result)
        assert set(await everything(alice)) == {
            ("conversations", CONV),
            ("memory", "good1"),
            ("messages", "good2"),
        }

    async def test_attachment_id_clash_rejects_only_that_message(
        self, alice: UserStore
    ) -> None:
        pic = {"id": "same", "mime": "image/png", "content_b64": "YWJj"}
        await alice.push([conversation(), message("m1", attachments=[pic])])
        results = await alice.push(
            [message("m2", attachments=[pic]), note("n1", "ok", ts(1))]
        )
        assert statuses(results) == ["rejected", "applied"]
        assert "refused" in results[0]["error"]
        assert await alice.get_message("m2") is None

    async def test_null_optional_strings_take_their_defaults(
        self, alice: UserStore
    ) -> None:
        nulls = {"file": None, "mime": None, "title": None, "kind": None}
        results = await alice.push(
            [
                note("n1", "with nulls", ts(1), **nulls),
                note("n2", "wrong type", ts(1), file=5),
            ]
        )
        assert statuses(results) == ["applied", "rejected"]
        assert results[1]["error"] == "file must be a string"
        stored = (await everything(alice))[("memory", "n1")]
        assert (stored["file"], stored["mime"], stored["title"]) == ("", "", "")
        assert stored["kind"] == "note"
        # a required string stays required
        await alice.push([conversation()])
        no_mime = message("m2")
        no_mime["data"]["attachments"] = [
            {"id": "a1", "name": "x.png", "mime": None, "content_b64": ""}
        ]
        results = await alice.push([no_mime])
        assert results[0]["error"] == "mime is required"

    async def test_too_many_changes(self, alice: UserStore) -> None:
        from grizz_server.store.sync import MAX_BATCH

        batch = [note(f"n{i}", "x", ts(1)) for i in range(MAX_BATCH + 2)]
        results = await alice.push(batch)
        assert statuses(results[-2:]) == ["rejected", "rejected"]
        assert await alice.current_seq() == MAX_BATCH

    async def test_not_a_list(self, alice: UserStore) -> None:
        with pytest.raises(UsageError, match="list of changes"):
            await alice.push({"entity": "memory"})  # type: ignore[arg-type]

    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=12,
    )

    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(
        st.lists(
            st.one_of(
                json_values,
                st.fixed_dictionaries(
                    {
                        "entity": st.sampled_from(
                            ["memory", "messages", "conversations"]
                        ),
                        "id": st.text(max_size=6) | st.integers(),
                        "data": st.dictionaries(
                            st.sampled_from(
                                [
                                    "content",
                                    "day",
                                    "created_at",
                                    "updated_at",
                                    "role",
                                    "deleted",
                                    "conversation_id",
                                    "metadata",
                                ]
                            ),
                            json_values,
                        ),
                    }
                ),
            ),
            max_size=6,
        )
    )
    async def test_fuzzed_batches_never_raise(
        self, alice: UserStore, batch: list[Any]
    ) -> None:
        before = await alice.current_seq()
        results = await alice.push(batch)
        assert len(results) == len(batch)
        applied = sum(r["status"] == "applied" for r in results)
        assert all(
            r["status"] in ("applied", "unchanged", "superseded", "rejected")
            for r in results
        )
        assert all("error" in r for r in results if r["status"] == "rejected")
        assert await alice.current_seq() - before <= applied


class TestConcurrency:
    async def test_parallel_pushes_get_distinct_gap_free_seqs(
        self, store: ServerStore, store_url: str
    ) -> None:
        user = await store.add_user("alice")
        # A second ServerStore is another pool, as a second process would have.
        other = await ServerStore.open(store_url)
        try:
            stores = [store.for_user(user.id), other.for_user(user.id)]
            await stores[0].push([conversation()])

            async def writer(k: int) -> None:
                mine = stores[k % 2]
                for i in range(10):
                    await mine.push(
                        [note(f"w{k}-{i}", "x", ts(1)), message(f"m{k}-{i}")]
                    )
                    await mine.remember(f"tool note {k}-{i}")

            await asyncio.gather(*(writer(k) for k in range(6)))
        finally:
            await other.close()
        changes, cursor, more = await stores[0].pull(0, limit=1000)
        seqs = [c["seq"] for c in changes]
        assert not more and cursor == len(changes) == 1 + 6 * 10 * 3
        assert seqs == list(range(1, cursor + 1))

    async def test_parallel_chat_writes(self, alice: UserStore) -> None:
        conv = await alice.ensure_day(DAY, "UTC")

        async def job(k: int) -> None:
            await alice.add_message(
                conversation_id=conv,
                role=Role.USER,
                content=f"q{k}",
                message_id=f"q{k}",
            )
            await alice.start_reply(
                reply_id=f"r{k}", conversation_id=conv, model="m", metadata={}
            )
            for part in range(3):
                await alice.update_message(f"r{k}", content="x" * part)
            await alice.update_message(f"r{k}", status="complete")

        await asyncio.gather(*(job(k) for k in range(8)))
        changes, cursor, _ = await alice.pull(0, limit=1000)
        assert cursor == await alice.current_seq() == 1 + 8 * 6
        assert len(changes) == 1 + 16
        assert len({c["seq"] for c in changes}) == len(changes)
        replies = [c["data"] for c in changes if c["id"].startswith("r")]
        assert all(r["status"] == "complete" and r["content"] == "xx" for r in replies)
