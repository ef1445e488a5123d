"""The store's hot statements, built once per dialect with bind parameters.

Building a SQLAlchemy statement costs more than running it on SQLite, so the
statements a job runs are made once here (`functools.cache`) and executed with
parameter dicts. Where-clause parameters are prefixed `k_` and SET values `v_`,
so they never clash with the column names SQLAlchemy reserves for VALUES.

Must not import: the core, the provider, websockets, redis.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Integer,
    Text,
    and_,
    bindparam,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from grizz_core.domain import Attachment, MemoryItem, Message, Role, Status, loads

from .schema import attachments, conversations, memory, messages, tokens, users

MAX_SEARCH_WORDS = 8
NO_LIMIT = 2**31 - 1

_c, _m, _n, _a = conversations.c, messages.c, memory.c, attachments.c
_uid = bindparam("k_uid", type_=Text)
_id = bindparam("k_id", type_=Text)


def _insert(dialect: str, table: Any) -> Any:
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


# -- the change counter ---------------------------------------------------------

take_seq = (
    update(users)
    .where(users.c.id == _uid)
    .values(seq=users.c.seq + bindparam("k_n", type_=BigInteger))
    .returning(users.c.seq)
)
lock_seq = select(users.c.seq).where(users.c.id == _uid).with_for_update()
set_seq = update(users).where(users.c.id == _uid).values(seq=bindparam("k_seq"))
current_seq = select(users.c.seq).where(users.c.id == _uid)

# -- conversations and messages ---------------------------------------------------

conversation_exists = select(_c.id).where(_c.user_id == _uid, _c.id == _id)
get_message = select(messages).where(_m.user_id == _uid, _m.id == _id)
message_metadata = select(_m.metadata).where(_m.user_id == _uid, _m.id == _id)
insert_attachments = attachments.insert()
update_message = (
    update(messages)
    .where(_m.user_id == _uid, _m.id == _id)
    .values(
        content=func.coalesce(bindparam("v_content", type_=Text), _m.content),
        status=func.coalesce(bindparam("v_status", type_=Text), _m.status),
        metadata=func.coalesce(bindparam("v_metadata", type_=Text), _m.metadata),
        updated_at=bindparam("v_updated_at", type_=Text),
        seq=bindparam("v_seq", type_=BigInteger),
    )
)
attachments_of = (
    select(attachments)
    .where(_a.user_id == _uid, _a.message_id == bindparam("k_message", type_=Text))
    .order_by(_a.position, _a.id)
)
recent_messages = (
    select(messages)
    .where(
        _m.user_id == _uid,
        _m.conversation_id == bindparam("k_conversation", type_=Text),
        _m.deleted == 0,
    )
    .order_by(_m.created_at.desc(), _m.id.desc())
    .limit(bindparam("k_limit", type_=Integer))
)
messages_changed_since = (
    select(messages)
    .where(_m.user_id == _uid, _m.seq > bindparam("k_after", type_=BigInteger))
    .order_by(_m.seq)
    .limit(bindparam("k_limit", type_=Integer))
)
"""A user's message rows written after change number `k_after`, in order
(the `Windows` catch-up; any conversation: the index is (user_id, seq))."""
previous_day = (
    select(_c.id, _c.day)
    .where(
        _c.user_id == _uid,
        _c.day < bindparam("k_day", type_=Text),
        exists().where(
            _m.user_id == _c.user_id, _m.conversation_id == _c.id, _m.deleted == 0
        ),
    )
    .order_by(_c.day.desc())
    .limit(1)
)


@functools.cache
def insert_conversation(dialect: str) -> Any:
    return _insert(dialect, conversations).on_conflict_do_nothing().returning(_c.id)


@functools.cache
def insert_message(dialect: str) -> Any:
    return _insert(dialect, messages).on_conflict_do_nothing().returning(_m.id)


@functools.cache
def start_reply(dialect: str) -> Any:
    """Insert a reply row, or overwrite an existing reply row of the same
    conversation with the new one (a retry, or the attempt's final write); a
    row of another role or conversation is left alone."""
    stmt = _insert(dialect, messages)
    new = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=[_m.user_id, _m.id],
        set_={
            "content": new.content,
            "status": new.status,
            "model": new.model,
            "metadata": new.metadata,
            "updated_at": new.updated_at,
            "seq": new.seq,
        },
        where=and_(_m.role == "assistant", _m.conversation_id == new.conversation_id),
    ).returning(*messages.c)


# -- memory -------------------------------------------------------------------------

insert_memory = memory.insert()
list_memory = (
    select(memory)
    .where(_n.user_id == _uid, _n.deleted == 0)
    .order_by(_n.updated_at.desc(), _n.id.desc())
    .limit(bindparam("k_limit", type_=Integer))
)
find_memory = (
    select(memory)
    .where(
        _n.user_id == _uid,
        _n.deleted == 0,
        or_(_n.id == _id, _n.id.like(bindparam("k_prefix", type_=Text), escape="\\")),
    )
    .limit(2)
)
tombstone_memory = (
    update(memory)
    .where(_n.user_id == _uid, _n.id == _id)
    .values(
        deleted=1,
        updated_at=bindparam("v_updated_at", type_=Text),
        seq=bindparam("v_seq", type_=BigInteger),
    )
)


@functools.cache
def search_memory(words: int) -> Any:
    """Live notes whose title or content contains any of `words` LIKE patterns
    (parameters `k_w0` …), newest first."""
    haystack = func.lower(_n.title + " " + _n.content)
    return (
        select(memory)
        .where(
            _n.user_id == _uid,
            _n.deleted == 0,
            or_(
                *(
                    haystack.like(bindparam(f"k_w{i}", type_=Text), escape="\\")
                    for i in range(words)
                )
            ),
        )
        .order_by(_n.updated_at.desc(), _n.id.desc())
        .limit(bindparam("k_limit", type_=Integer))
    )


def like_pattern(word: str, *, prefix_only: bool = False) -> str:
    """A LIKE pattern matching `word` literally (`%`, `_` and `\\` escaped)."""
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}%" if prefix_only else f"%{escaped}%"


# -- tokens ---------------------------------------------------------------------------

authenticate = (
    select(
        tokens.c.id,
        tokens.c.user_id,
        tokens.c.device,
        tokens.c.last_used_at,
        users.c.name,
    )
    .join(users, users.c.id == tokens.c.user_id)
    .where(
        tokens.c.token_hash == bindparam("k_hash", type_=Text), tokens.c.revoked == 0
    )
)
touch_token = (
    update(tokens)
    .where(tokens.c.id == _id)
    .values(last_used_at=bindparam("v_last_used_at", type_=Text))
)


# -- rows of the raw `StoreBackend.fetch` path into the core's records --------------

_ROLES = {str(role): role for role in Role}
_STATUSES = {str(status): status for status in Status}
_MI = {name: i for i, name in enumerate(messages.c.keys())}
MESSAGE_SEQ = _MI["seq"]
_NI = {name: i for i, name in enumerate(memory.c.keys())}


def _json(text: str | None) -> dict[str, Any]:
    return {} if not text or text == "{}" else loads(text)


T = TypeVar("T")


class RowCache:
    """Records already built from rows, keyed by (kind, user, id), checked by seq.

    A row's `seq` changes on every write to it, by any process, so a hit is
    exactly the row the database just returned: the cache can never serve a
    stale version, only save rebuilding the same one (JSON parsing and a
    frozen dataclass per row, which dominate a worker's context reads).
    Bounded: past `maxsize` records the oldest-inserted go first.
    """

    def __init__(self, maxsize: int = 50_000) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[tuple[str, str, str], tuple[int, Any]] = OrderedDict()

    def get(
        self,
        kind: str,
        user_id: str,
        row: Any,
        index: dict[str, int],
        build: Callable[[Any], T],
    ) -> T:
        key = (kind, user_id, row[index["id"]])
        seq = row[index["seq"]]
        hit = self._items.get(key)
        if hit is not None and hit[0] == seq:
            return hit[1]  # type: ignore[no-any-return]
        record = build(row)
        self._items[key] = (seq, record)
        if len(self._items) > self.maxsize:
            self._items.popitem(last=False)
        return record

    def messages(self, user_id: str, rows: list[Any]) -> list[Message]:
        return [self.get("m", user_id, r, _MI, message_from_tuple) for r in rows]

    def memory(self, user_id: str, rows: list[Any]) -> list[MemoryItem]:
        return [self.get("n", user_id, r, _NI, memory_from_tuple) for r in rows]


def message_from_tuple(row: Any) -> Message:
    """A `Message` from a `select(messages)` row fetched raw."""
    return Message(
        id=row[_MI["id"]],
        conversation_id=row[_MI["conversation_id"]],
        role=_ROLES[row[_MI["role"]]],
        content=row[_MI["content"]] or "",
        status=_STATUSES[row[_MI["status"]]],
        created_at=row[_MI["created_at"]],
        updated_at=row[_MI["updated_at"]],
        model=row[_MI["model"]] or "",
        metadata=_json(row[_MI["metadata"]]),
        deleted=bool(row[_MI["deleted"]]),
    )


def memory_from_tuple(row: Any) -> MemoryItem:
    """A `MemoryItem` from a `select(memory)` row fetched raw."""
    return MemoryItem(
        id=row[_NI["id"]],
        kind=row[_NI["kind"]] or "note",
        title=row[_NI["title"]] or "",
        content=row[_NI["content"]] or "",
        created_at=row[_NI["created_at"]],
        updated_at=row[_NI["updated_at"]],
        properties=_json(row[_NI["properties"]]),
        file=row[_NI["file"]] or "",
        mime=row[_NI["mime"]] or "",
        deleted=bool(row[_NI["deleted"]]),
    )


_AI = {name: i for i, name in enumerate(attachments.c.keys())}


def attachment_from_tuple(row: Any) -> Attachment:
    """An `Attachment` from a `select(attachments)` row fetched raw."""
    return Attachment(
        id=row[_AI["id"]],
        message_id=row[_AI["message_id"]],
        name=row[_AI["name"]],
        mime=row[_AI["mime"]],
        size=row[_AI["size"]],
        sha256=row[_AI["sha256"]],
        content=bytes(row[_AI["content"]]),
    )
