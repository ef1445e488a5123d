"""Numbered schema migrations of the server store, for SQLite and PostgreSQL.

Each migration runs in its own transaction under a lock (SQLite's write lock,
PostgreSQL's advisory lock), re-checks `schema_migrations` inside it and
records itself there, so a gateway and its workers starting together migrate
once. Table definitions inside a migration are frozen copies: never edit a
migration that has shipped, add a new one.

Must not import: the core, the provider, websockets, redis.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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
    select,
    text,
)
from sqlalchemy.engine import Connection

from grizz_core.domain import utc_now
from grizz_core.errors import StoreError

from .backend import StoreBackend

ADVISORY_LOCK_KEY = 0x6772697A7A  # "grizz"

_tracking = MetaData()
schema_migrations = Table(
    "schema_migrations",
    _tracking,
    Column("version", Integer, primary_key=True),
    Column("name", Text, nullable=False),
    Column("applied_at", Text, nullable=False),
)


def _scoped_ids() -> tuple[Column[str], Column[str]]:
    return Column("user_id", Text, primary_key=True), Column(
        "id", Text, primary_key=True
    )


def m001_create_core_tables(conn: Connection) -> None:
    """Users, device tokens, and the per-user conversations, messages, memory."""
    md = MetaData()
    Table(
        "users",
        md,
        Column("id", Text, primary_key=True),
        Column("name", Text, nullable=False, unique=True),
        Column("created_at", Text, nullable=False),
        Column("seq", BigInteger, nullable=False, server_default="0"),
    )
    Table(
        "tokens",
        md,
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
    Table(
        "conversations",
        md,
        *_scoped_ids(),
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
    Table(
        "messages",
        md,
        *_scoped_ids(),
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
        ForeignKeyConstraint(
            ["user_id", "conversation_id"],
            ["conversations.user_id", "conversations.id"],
        ),
        Index("messages_by_conversation", "user_id", "conversation_id", "created_at"),
        Index("messages_by_seq", "user_id", "seq", unique=True),
    )
    Table(
        "memory",
        md,
        *_scoped_ids(),
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
    md.create_all(conn)


def m002_add_attachments(conn: Connection) -> None:
    """Attachment bytes stored with their message, and a flag on the message."""
    md = MetaData()
    Table(
        "messages",
        md,
        Column("user_id", Text, primary_key=True),
        Column("id", Text, primary_key=True),
    )
    Table(
        "attachments",
        md,
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
    md.tables["attachments"].create(conn)
    conn.exec_driver_sql(
        "ALTER TABLE messages ADD COLUMN has_attachments INTEGER NOT NULL DEFAULT 0"
    )


def m003_cover_recent_messages(conn: Connection) -> None:
    """Index a conversation's live messages in reading order, with their seq.

    A day's newest live messages (`recent_messages`, `ORDER BY created_at
    DESC, id DESC`) walked the old index (user_id, conversation_id,
    created_at), looked every row up for `deleted`, and sorted ties on `id`
    in a temporary B-tree. This one yields them already in order, with no
    sort (the id and seq of 400 rows: 139 us instead of 332 us on SQLite).
    It replaces the old index, whose every use also filters on `deleted`.
    """
    conn.exec_driver_sql(
        "CREATE INDEX messages_by_conversation_live ON messages "
        "(user_id, conversation_id, deleted, created_at, id, seq)"
    )
    conn.exec_driver_sql("DROP INDEX messages_by_conversation")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[Connection], None]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "create_core_tables", m001_create_core_tables),
    Migration(2, "add_attachments", m002_add_attachments),
    Migration(3, "cover_recent_messages", m003_cover_recent_messages),
)
LATEST = MIGRATIONS[-1].version


def _applied(conn: Connection) -> set[int]:
    _tracking.create_all(conn, checkfirst=True)
    return set(conn.execute(select(schema_migrations.c.version)).scalars())


async def applied_versions(backend: StoreBackend) -> set[int]:
    """Versions recorded in `schema_migrations` (empty for a new database)."""
    async with backend.read() as conn:
        has_table = await conn.run_sync(
            lambda sync: sync.dialect.has_table(sync, "schema_migrations")
        )
        if not has_table:
            return set()
        rows = await conn.execute(select(schema_migrations.c.version))
        return set(rows.scalars())


async def migrate(backend: StoreBackend, *, target: int | None = None) -> list[int]:
    """Apply pending migrations up to `target` (default: all); return those applied.

    Raises:
        StoreError: the database was written by a newer grizz-server, or failed.
    """
    target = LATEST if target is None else target
    done = await applied_versions(backend)
    _refuse_newer(done)
    ran: list[int] = []
    for migration in MIGRATIONS:
        if migration.version > target or migration.version in done:
            continue
        async with backend.write() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"),
                    {"key": ADVISORY_LOCK_KEY},
                )
            now_done = await conn.run_sync(_applied)
            _refuse_newer(now_done)
            if migration.version in now_done:
                continue
            await conn.run_sync(migration.apply)
            await conn.execute(
                schema_migrations.insert().values(
                    version=migration.version,
                    name=migration.name,
                    applied_at=utc_now(),
                )
            )
        ran.append(migration.version)
    return ran


def _refuse_newer(done: set[int]) -> None:
    newest = max(done, default=0)
    if newest > LATEST:
        raise StoreError(
            f"The server database has schema version {newest}, newer than this "
            f"grizz-server supports ({LATEST}); upgrade grizz-server."
        )
