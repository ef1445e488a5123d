"""A process's conversation windows (`grizz_server/store/recent.py`) always
answer what a whole read of the database would, whoever wrote the rows.

Every test runs on SQLite and on PostgreSQL. "theirs" is a second
`ServerStore` on the same database: another gateway or worker process.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from grizz_core.domain import day_conversation_id
from grizz_server.store import ServerStore, UserStore
from grizz_server.store.recent import CATCH_UP_LIMIT, Windows

DAYS = ("2026-11-22", "2026-11-23")


def ts(second: int) -> str:
    return f"2026-11-23T10:00:{second:02d}.000000+00:00"


def pushed(mid: str, day: str, second: int, **data: Any) -> dict[str, Any]:
    return {
        "entity": "messages",
        "id": mid,
        "data": {
            "conversation_id": day_conversation_id(day),
            "role": "user",
            "content": f"text of {mid}",
            "created_at": ts(second),
            "updated_at": ts(second),
            **data,
        },
    }


async def delete(user: UserStore, mid: str) -> bool:
    """Tombstone a message the way a device does (a push); False if none."""
    found = await user.get_message(mid)
    if found is None:
        return False
    data = {**found.to_dict(), "deleted": True, "updated_at": "2999-01-01T00:00Z"}
    await user.push([{"entity": "messages", "id": mid, "data": data}])
    return True


async def truth(
    store: ServerStore, user_id: str, conv: str, limit: int, skip: set[str]
) -> list[tuple[str, str]]:
    """(id, content) of the newest live messages, read whole with plain SQL."""
    async with store._backend.read() as conn:
        rows = await conn.execute(
            text(
                "SELECT id, content FROM messages WHERE user_id = :u AND "
                "conversation_id = :c AND deleted = 0 "
                "ORDER BY created_at DESC, id DESC"
            ),
            {"u": user_id, "c": conv},
        )
        return [(r[0], r[1]) for r in rows if r[0] not in skip][:limit]


async def seen(
    user: UserStore, conv: str, limit: int, skip: set[str]
) -> list[tuple[str, str]]:
    return [
        (m.id, m.content)
        for m in await user.recent_messages(conv, limit=limit, exclude=list(skip))
    ]


@pytest.fixture
async def theirs(store_url: str, store: ServerStore) -> AsyncIterator[ServerStore]:
    other = await ServerStore.open(store_url)
    try:
        yield other
    finally:
        await other.close()


async def new_user(store: ServerStore) -> UserStore:
    user = store.for_user(
        (await store.add_user(f"u{len(await store.list_users())}")).id
    )
    for day in DAYS:
        await user.ensure_day(day, "UTC")
    return user


class TestWindows:
    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(st.data())
    async def test_matches_a_whole_read(
        self, store: ServerStore, theirs: ServerStore, data: st.DataObject
    ) -> None:
        """Random writes by this process and another (inserts with colliding
        times, edits, deletions, both days) between reads of random sizes."""
        mine = await new_user(store)
        other = theirs.for_user(mine.user_id)
        ids = [f"m{i}" for i in range(12)]
        steps = data.draw(
            st.lists(
                st.tuples(
                    st.sampled_from(["push", "push", "edit", "delete", "read"]),
                    st.sampled_from(ids),
                    st.sampled_from(DAYS),
                    st.integers(0, 4),  # few seconds: many created_at ties
                    st.booleans(),  # write through this process or the other
                    st.integers(1, 6),  # read limit
                ),
                max_size=30,
            )
        )
        for op, mid, day, second, here, limit in steps:
            writer = mine if here else other
            if op == "push":
                await writer.push([pushed(mid, day, second)])
            elif op == "edit" and await writer.get_message(mid) is not None:
                await writer.update_message(mid, content=f"edit {second} of {mid}")
            elif op == "delete":
                await delete(writer, mid)
            conv = day_conversation_id(day)
            skip = {mid} if second % 2 else set()
            expected = await truth(store, mine.user_id, conv, limit, skip)
            assert await seen(mine, conv, limit, skip) == expected, steps

    async def test_deletions_that_empty_a_full_window_read_it_again(
        self, store: ServerStore, theirs: ServerStore
    ) -> None:
        mine = await new_user(store)
        other = theirs.for_user(mine.user_id)
        conv = day_conversation_id(DAYS[1])
        await mine.push([pushed(f"m{i:02d}", DAYS[1], i % 60) for i in range(20)])
        assert [m for m, _ in await seen(mine, conv, 3, set())] == [
            "m19",
            "m18",
            "m17",
        ]
        for mid in ("m19", "m18", "m17"):
            assert await delete(other, mid)
        assert [m for m, _ in await seen(mine, conv, 3, set())] == [
            "m16",
            "m15",
            "m14",
        ]

    async def test_a_long_absence_reads_the_window_whole(
        self, store: ServerStore, theirs: ServerStore
    ) -> None:
        """More changes than one catch-up takes (a device's big import)."""
        mine = await new_user(store)
        other = theirs.for_user(mine.user_id)
        conv = day_conversation_id(DAYS[1])
        await mine.push([pushed("first", DAYS[1], 0)])
        assert len(await seen(mine, conv, 5, set())) == 1
        await other.push(
            [pushed(f"n{i:03d}", DAYS[0], 1) for i in range(CATCH_UP_LIMIT + 5)]
            + [pushed("late", DAYS[1], 59)]
        )
        assert (await seen(mine, conv, 5, set()))[0][0] == "late"
        assert await seen(mine, conv, 5, set()) == await truth(
            store, mine.user_id, conv, 5, set()
        )

    async def test_concurrent_readers_of_one_window_agree(
        self, store: ServerStore, theirs: ServerStore
    ) -> None:
        mine = await new_user(store)
        other = theirs.for_user(mine.user_id)
        conv = day_conversation_id(DAYS[1])
        await mine.push([pushed(f"m{i:02d}", DAYS[1], i) for i in range(10)])
        await seen(mine, conv, 20, set())
        for i in range(10, 20):
            await other.push([pushed(f"m{i:02d}", DAYS[1], i)])
            await other.update_message(f"m{i - 5:02d}", content=f"edited {i}")
            results = await asyncio.gather(
                *(seen(mine, conv, 20, set()) for _ in range(4))
            )
            expected = await truth(store, mine.user_id, conv, 20, set())
            assert all(r == expected for r in results)

    async def test_windows_are_bounded(self, store: ServerStore) -> None:
        """Past `max_messages` held in all the least recently used windows
        go, and a window read again is read whole."""
        mine = await new_user(store)
        store._backend.windows = Windows(max_messages=100)
        days = [f"2026-10-{d:02d}" for d in range(1, 11)]
        for day in days:
            conv = await mine.ensure_day(day, "UTC")
            await mine.push(
                [pushed(f"{day}-{i}", day, i, content=day) for i in range(40)]
            )
            assert {c for _, c in await seen(mine, conv, 38, {"a", "b"})} == {day}
        held = store._backend.windows._windows
        assert [conv for _, conv in held] == [
            day_conversation_id(day) for day in days[-2:]
        ]  # 40 messages each: room for two
        first = day_conversation_id(days[0])
        assert len(await seen(mine, first, 50, set())) == 40
