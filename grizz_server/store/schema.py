"""The server store's tables as the queries see them (the latest schema).

The tables are created and upgraded only by `migrations.py`; these objects
describe the result, indexes and foreign keys included (tests/server/
test_schema.py checks that a migrated database equals them). Every user-data
table has the composite primary key `(user_id, id)` and a `seq` column: the
per-user change number of the row's last write, which is the sync cursor
(`users.seq` holds each user's counter). Text timestamps are ISO-8601 UTC with
microseconds, so they sort as strings.

Must not import: the core, the provider, websockets, redis.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
)

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("created_at", Text, nullable=False),
    Column("seq", BigInteger, nullable=False, server_default="0"),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", Text, primary_key=True),
    Column("user_id", Text, nullable=False),
    Column("device", Text, nullable=False),
    Column("token_hash", Text, nullable=False, unique=True),
    Column("created_at", Text, nullable=False),
    Column("last_used_at", Text),
    Column("revoked", Integer, nullable=False, server_default="0"),
    ForeignKeyConstraint(["user_id"], ["users.id"]),
    Index("tokens_by_user", "user_id"),
)

conversations = Table(
    "conversations",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("id", Text, primary_key=True),
    Column("day", Text, nullable=False),
    Column("tz", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    Column("deleted", Integer, nullable=False),
    Column("seq", BigInteger, nullable=False),
    ForeignKeyConstraint(["user_id"], ["users.id"]),
    Index("conversations_by_day", "user_id", "day", unique=True),
    Index("conversations_by_seq", "user_id", "seq", unique=True),
)

messages = Table(
    "messages",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("id", Text, primary_key=True),
    Column("conversation_id", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("content", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("metadata", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    Column("deleted", Integer, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("has_attachments", Integer, nullable=False, server_default="0"),
    ForeignKeyConstraint(
        ["user_id", "conversation_id"],
        ["conversations.user_id", "conversations.id"],
    ),
    Index(
        "messages_by_conversation_live",
        "user_id",
        "conversation_id",
        "deleted",
        "created_at",
        "id",
        "seq",
    ),
    Index("messages_by_seq", "user_id", "seq", unique=True),
)

memory = Table(
    "memory",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("id", Text, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("content", Text, nullable=False),
    Column("properties", Text, nullable=False),
    Column("file", Text, nullable=False),
    Column("mime", Text, nullable=False),
    Column("deleted", Integer, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    ForeignKeyConstraint(["user_id"], ["users.id"]),
    Index("memory_by_updated", "user_id", "updated_at"),
    Index("memory_by_seq", "user_id", "seq", unique=True),
)

attachments = Table(
    "attachments",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("id", Text, primary_key=True),
    Column("message_id", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("mime", Text, nullable=False),
    Column("size", Integer, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("position", Integer, nullable=False),
    ForeignKeyConstraint(
        ["user_id", "message_id"], ["messages.user_id", "messages.id"]
    ),
    Index("attachments_by_message", "user_id", "message_id"),
)

ENTITY_TABLES: dict[str, Table] = {
    "conversations": conversations,
    "messages": messages,
    "memory": memory,
}
"""The synced entities, by the name used on the wire."""
