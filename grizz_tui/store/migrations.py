"""Numbered schema migrations of the local database.

Never edit a migration once it has shipped: add a new one. Each runs in its own
transaction (sqlite-utils `Migrations`), so an older database upgrades in place
and a failed step leaves it as it was.
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from grizz_tui.store.schema import MIGRATION_SET

migrations = Migrations(MIGRATION_SET)

SYNCED_TABLES = ("conversations", "messages", "memory")


@migrations()
def m001_create_tables(db: Database) -> None:
    """The first schema: conversations per day, messages, memory notes."""
    db.execute(
        """
        CREATE TABLE conversations (
            id TEXT PRIMARY KEY,
            day TEXT NOT NULL UNIQUE,
            tz TEXT NOT NULL,
            title TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )"""
    )
    db.execute(
        """
        CREATE TABLE messages (
            id TEXT PRIMARY KEY,
            conversation_id TEXT NOT NULL REFERENCES conversations(id),
            role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
            content TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL
                CHECK (status IN ('streaming', 'complete', 'interrupted', 'error')),
            model TEXT NOT NULL DEFAULT '',
            metadata TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            deleted INTEGER NOT NULL DEFAULT 0
        )"""
    )
    db.execute(
        "CREATE INDEX messages_by_conversation ON messages(conversation_id, created_at)"
    )
    db.execute(
        "CREATE INDEX messages_streaming ON messages(status) WHERE status = 'streaming'"
    )
    db.execute(
        """
        CREATE TABLE memory (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL DEFAULT 'note',
            title TEXT NOT NULL DEFAULT '',
            content TEXT NOT NULL DEFAULT '',
            properties TEXT NOT NULL DEFAULT '{}',
            file TEXT NOT NULL DEFAULT '',
            mime TEXT NOT NULL DEFAULT '',
            deleted INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )"""
    )


@migrations()
def m002_add_search(db: Database) -> None:
    """FTS5 indexes over messages and memory, kept current by triggers."""
    db.table("messages").enable_fts(
        ["content"], create_triggers=True, tokenize="porter unicode61"
    )
    db.table("memory").enable_fts(
        ["title", "content"], create_triggers=True, tokenize="porter unicode61"
    )


@migrations()
def m003_add_attachments(db: Database) -> None:
    """Image attachments stored with their message."""
    db.execute(
        """
        CREATE TABLE attachments (
            id TEXT PRIMARY KEY,
            message_id TEXT NOT NULL REFERENCES messages(id),
            name TEXT NOT NULL,
            mime TEXT NOT NULL,
            size INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            content BLOB NOT NULL,
            created_at TEXT NOT NULL
        )"""
    )
    db.execute("CREATE INDEX attachments_by_message ON attachments(message_id)")


@migrations()
def m004_add_sync_bookkeeping(db: Database) -> None:
    """Outbox of rows not yet pushed to a sync server, and sync state."""
    db.execute(
        """
        CREATE TABLE outbox (
            entity TEXT NOT NULL,
            id TEXT NOT NULL,
            changed_at TEXT NOT NULL,
            PRIMARY KEY (entity, id)
        )"""
    )
    db.execute("CREATE TABLE sync_state (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    # The trigger uses an UPSERT, not INSERT OR REPLACE: inside a trigger an
    # "OR REPLACE" is overridden by the outer statement's conflict handling, so
    # an outer `INSERT … ON CONFLICT DO UPDATE` on messages would fail.
    for table in SYNCED_TABLES:
        for event in ("INSERT", "UPDATE"):
            db.execute(
                f"""
                CREATE TRIGGER {table}_outbox_{event.lower()} AFTER {event} ON {table}
                WHEN (SELECT value FROM sync_state WHERE key = 'applying') IS NULL
                BEGIN
                    INSERT INTO outbox (entity, id, changed_at)
                    VALUES ('{table}', new.id, new.updated_at)
                    ON CONFLICT (entity, id)
                    DO UPDATE SET changed_at = excluded.changed_at;
                END"""
            )
    # Everything written before sync existed still has to be pushed once.
    for table in SYNCED_TABLES:
        db.execute(
            f"INSERT OR IGNORE INTO outbox (entity, id, changed_at) "
            f"SELECT '{table}', id, updated_at FROM {table}"
        )


@migrations()
def m005_add_pending_sends(db: Database) -> None:
    """User messages stored on the device that the sync server has not accepted.

    They are sent with `send` (so Grizz answers them), never pushed as rows.
    """
    db.execute(
        """
        CREATE TABLE pending_sends (
            message_id TEXT PRIMARY KEY REFERENCES messages(id),
            created_at TEXT NOT NULL
        )"""
    )
