"""Sync for one user, the upload half: `push` (idempotent upserts by id).

`pull` (changes after a cursor) is in `pull.py`.

Push rules, which make every device converge whatever order batches arrive in:
- a row is identified by `(user_id, id)`; pushing the same data again changes
  nothing and takes no change number;
- memory notes and conversations: last writer wins on `updated_at`, ties broken
  by comparing the rows' canonical JSON, so every server picks the same winner;
  an `updated_at` more than `max_skew_s` ahead of the server's clock is stored
  as the server's time plus `max_skew_s` (a device whose clock is years ahead
  cannot freeze a row), and an edit that loses comes back `superseded` with
  the winning row's `updated_at` (`unchanged` means the same data again); the
  winning row then takes a new change number, so the losing device's next
  pull brings it back even when its cursor is past the winner's;
- messages are append-only: the conversation, role and creation time of an id
  never change; only content, status, model and metadata do (last writer wins
  as above), and a tombstone (`deleted`) is final;
- deletes are tombstones (`deleted = 1`), never row removals.
A bad change is rejected with a reason and the rest of the batch still applies.

Must not import: the provider, websockets, redis.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from typing import Any

from sqlalchemy import Table, bindparam, select, update

from grizz_core import protocol as p
from grizz_core.errors import UsageError

from .backend import Conn, RejectedData, StoreBackend
from .schema import ENTITY_TABLES, attachments, conversations
from .validate import Invalid, Prepared, canonical_json, prepare

MAX_BATCH = 1000
_ENTITY_ORDER = {"conversations": 0, "messages": 1, "memory": 2}
_IN_CHUNK = 500

Result = dict[str, Any]
Key = tuple[str, str]


def _result(entity: Any, change_id: Any, status: str, error: str = "") -> Result:
    out: Result = {
        "id": change_id if isinstance(change_id, str) else "",
        "entity": entity if isinstance(entity, str) else "",
        "status": status,
    }
    if error:
        out["error"] = error
    return out


MAX_SKEW_S = 300.0
"""How far ahead of the server's clock an `updated_at` may be (the default of
the server setting `max_clock_skew_s`)."""


def _latest_allowed(max_skew_s: float) -> str:
    """The latest `updated_at` a push may set now, in the stored format."""
    moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=max_skew_s)
    return moment.isoformat(timespec="microseconds")


async def push(
    backend: StoreBackend,
    user_id: str,
    changes: list[dict[str, Any]],
    *,
    max_skew_s: float = MAX_SKEW_S,
) -> list[Result]:
    """Apply a device's changes in one transaction.

    Returns:
        One `{"id", "entity", "status": "applied"|"unchanged"|"superseded"|
        "rejected", "error"?, "updated_at"?}` per change, in the order given
        (`updated_at`, with `superseded`, is the winning row's).

    Raises:
        UsageError: `changes` is not a list.
        StoreError: the database itself failed (nothing was applied).
    """
    if not isinstance(changes, list):
        raise UsageError("A push carries a list of changes.")
    results: list[Result | None] = [None] * len(changes)
    prepared: list[Prepared] = []
    latest = _latest_allowed(max_skew_s)
    skewed: set[int] = set()
    """Changes whose `updated_at` was clamped."""
    for index, change in enumerate(changes):
        entity = change.get("entity") if isinstance(change, dict) else None
        change_id = change.get("id") if isinstance(change, dict) else None
        if index >= MAX_BATCH:
            results[index] = _result(
                entity,
                change_id,
                p.REJECTED,
                f"too many changes in one push (at most {MAX_BATCH})",
            )
            continue
        try:
            item = prepare(index, change)
            if item.row["updated_at"] > latest:  # same format: text order is time
                item.row["updated_at"] = latest
                skewed.add(index)
            prepared.append(item)
        except Invalid as exc:
            results[index] = _result(entity, change_id, p.REJECTED, str(exc))
    prepared.sort(key=lambda p: (_ENTITY_ORDER[p.entity], p.index))
    if prepared:
        try:
            await _apply(backend, user_id, prepared, results, skewed)
        except RejectedData:
            # Something slipped past validation (say, an attachment id another
            # message already uses): apply one by one to reject only the culprit.
            for item in prepared:
                try:
                    await _apply(backend, user_id, [item], results, skewed)
                except RejectedData as exc:
                    results[item.index] = _result(
                        item.entity,
                        item.id,
                        p.REJECTED,
                        f"the database refused it ({exc})",
                    )
    return [
        r if r is not None else _result("", "", p.REJECTED, "not processed")
        for r in results
    ]


async def _apply(
    backend: StoreBackend,
    user_id: str,
    batch: list[Prepared],
    results: list[Result | None],
    skewed: set[int],
) -> None:
    async with backend.write() as conn:
        top = await backend.lock_seq(conn, user_id)
        stored = await _load(conn, user_id, batch)
        known = await _known_conversations(conn, user_id, batch, stored)
        state: dict[Key, dict[str, Any]] = {}
        new_keys: set[Key] = set()
        new_attachments: list[dict[str, Any]] = []
        for item in batch:
            key = (item.entity, item.id)
            current = state.get(key) or stored.get(key)
            try:
                if (
                    item.entity == "messages"
                    and item.row["conversation_id"] not in known
                ):
                    raise Invalid(
                        f"conversation {item.row['conversation_id']} is unknown; "
                        "push it before its messages"
                    )
                if current is None:
                    new = {**item.row, "user_id": user_id}
                    if item.entity == "messages":
                        new["has_attachments"] = int(bool(item.attachments))
                        new_attachments += [
                            {
                                **a,
                                "user_id": user_id,
                                "message_id": item.id,
                                "created_at": item.row["created_at"],
                            }
                            for a in item.attachments
                        ]
                    new_keys.add(key)
                elif item.index in skewed and _same_edit(item, current):
                    new = current  # clamped again, to a later time: not an edit
                else:
                    new = MERGE[item.entity](current, item.row)
            except Invalid as exc:
                results[item.index] = _result(
                    item.entity, item.id, p.REJECTED, str(exc)
                )
                continue
            if new == current:
                outcome = results[item.index] = _unapplied(item, current)
                if outcome["status"] == p.SUPERSEDED:
                    # the winner takes a new change number, so the device that
                    # lost (its cursor may be past the winner's) pulls it back
                    state.pop(key, None)
                    state[key] = dict(current)
                continue
            if item.entity == "conversations":
                known.add(item.id)
            state.pop(key, None)
            state[key] = new  # re-insert: dict order is the order of last change
            results[item.index] = _result(item.entity, item.id, p.APPLIED)
        for number, row in enumerate(state.values(), start=top + 1):
            row["seq"] = number
        await _write(conn, state, new_keys, new_attachments)
        if state:
            await backend.set_seq(conn, user_id, top + len(state))


def _same_edit(item: Prepared, current: dict[str, Any]) -> bool:
    """True when `item` says what `current` says, whatever its `updated_at`."""
    return all(
        item.row[f] == current[f] for f in FIELDS[item.entity] if f != "updated_at"
    )


def _unapplied(item: Prepared, current: dict[str, Any]) -> Result:
    """`unchanged` (the stored row already says this) or `superseded` (lost)."""
    if _same_edit(item, current):
        return _result(item.entity, item.id, p.UNCHANGED)
    result = _result(item.entity, item.id, p.SUPERSEDED)
    result["updated_at"] = current["updated_at"]
    return result


async def _load(
    conn: Conn, user_id: str, batch: list[Prepared]
) -> dict[Key, dict[str, Any]]:
    found: dict[Key, dict[str, Any]] = {}
    for entity, table in ENTITY_TABLES.items():
        ids = sorted({p.id for p in batch if p.entity == entity})
        for chunk in chunks(ids):
            rows = await conn.execute(
                select(table).where(table.c.user_id == user_id, table.c.id.in_(chunk))
            )
            found.update(((entity, r.id), dict(r._mapping)) for r in rows)
    return found


async def _known_conversations(
    conn: Conn, user_id: str, batch: list[Prepared], stored: dict[Key, Any]
) -> set[str]:
    wanted = sorted({p.row["conversation_id"] for p in batch if p.entity == "messages"})
    known = {key[1] for key in stored if key[0] == "conversations"}
    c = conversations.c
    for chunk in chunks([w for w in wanted if w not in known]):
        rows = await conn.execute(
            select(c.id).where(c.user_id == user_id, c.id.in_(chunk))
        )
        known.update(rows.scalars())
    return known


async def _write(
    conn: Conn,
    state: dict[Key, dict[str, Any]],
    new_keys: set[Key],
    new_attachments: list[dict[str, Any]],
) -> None:
    for entity, table in ENTITY_TABLES.items():
        inserts = [
            row for key, row in state.items() if key[0] == entity and key in new_keys
        ]
        updates = [
            row
            for key, row in state.items()
            if key[0] == entity and key not in new_keys
        ]
        if inserts:
            await conn.execute(table.insert(), inserts)
        if updates:
            await conn.execute(
                _update_statement(table),
                [
                    {
                        **{f"v_{k}": v for k, v in row.items()},
                        "k_user": row["user_id"],
                        "k_id": row["id"],
                    }
                    for row in updates
                ],
            )
    if new_attachments:
        await conn.execute(attachments.insert(), new_attachments)


@functools.cache
def _update_statement(table: Table) -> Any:
    changing = [c.name for c in table.columns if c.name not in ("user_id", "id")]
    return (
        update(table)
        .where(table.c.user_id == bindparam("k_user"), table.c.id == bindparam("k_id"))
        .values({name: bindparam(f"v_{name}") for name in changing})
    )


def chunks(items: list[str]) -> list[list[str]]:
    return [items[i : i + _IN_CHUNK] for i in range(0, len(items), _IN_CHUNK)]


# -- merging a pushed row into the stored one ---------------------------------


def _newer(
    incoming: dict[str, Any], current: dict[str, Any], fields: tuple[str, ...]
) -> bool:
    """Last writer wins on updated_at; equal times are broken by canonical JSON."""

    def key(row: dict[str, Any]) -> tuple[str, str]:
        return row["updated_at"], canonical_json([row[f] for f in fields])

    return key(incoming) > key(current)


_CONVERSATION_FIELDS = ("tz", "title", "deleted", "updated_at")
_MESSAGE_FIELDS = ("content", "status", "model", "metadata", "updated_at")
_MEMORY_FIELDS = (
    "kind",
    "title",
    "content",
    "properties",
    "file",
    "mime",
    "deleted",
    "updated_at",
)


def _merge_conversation(
    current: dict[str, Any], incoming: dict[str, Any]
) -> dict[str, Any]:
    new = dict(current)
    if _newer(incoming, current, _CONVERSATION_FIELDS):
        new.update({f: incoming[f] for f in _CONVERSATION_FIELDS})
    return new


def _merge_message(current: dict[str, Any], incoming: dict[str, Any]) -> dict[str, Any]:
    if (incoming["conversation_id"], incoming["role"]) != (
        current["conversation_id"],
        current["role"],
    ):
        raise Invalid(
            "this message id already exists with another conversation or role; "
            "messages are append-only"
        )
    new = dict(current)
    if _newer(incoming, current, _MESSAGE_FIELDS):
        new.update({f: incoming[f] for f in _MESSAGE_FIELDS})
    new["deleted"] = max(
        current["deleted"], incoming["deleted"]
    )  # a tombstone is final
    return new


def _merge_memory(current: dict[str, Any], incoming: dict[str, Any]) -> dict[str, Any]:
    new = dict(current)
    if _newer(incoming, current, _MEMORY_FIELDS):
        new.update({f: incoming[f] for f in _MEMORY_FIELDS})
    return new


FIELDS: dict[str, tuple[str, ...]] = {
    "conversations": _CONVERSATION_FIELDS,
    "messages": (*_MESSAGE_FIELDS, "deleted"),
    "memory": _MEMORY_FIELDS,
}
"""The fields a pushed edit sets; equal on all of them means "the same data"."""

MERGE: dict[str, Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]] = {
    "conversations": _merge_conversation,
    "messages": _merge_message,
    "memory": _merge_memory,
}
