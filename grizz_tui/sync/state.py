"""What the device remembers about its server: url, user, device, cursor, last sync.

The values live in the local database's `sync_state` table (through
`grizz_tui.store.sync`); the token lives in the keyring, `server.url` in the
config file.

Must not import: textual, websockets.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from grizz_core.domain import utc_now
from grizz_tui.store import sync as store
from grizz_tui.store.db import Database


@dataclass(frozen=True)
class SyncState:
    url: str = ""
    """The server this device last logged in to."""
    user: str = ""
    device: str = ""
    cursor: int = 0
    """The last `pull` cursor fully applied."""
    last_sync: str = ""
    """When the last `grizz sync` round finished (ISO-8601 UTC), or ''."""

    def to_dict(self) -> dict[str, str | int]:
        return asdict(self)


def load_state(db: Database) -> SyncState:
    values = store.read_state(db)
    cursor = values.get("cursor", "0")
    return SyncState(
        url=values.get("url", ""),
        user=values.get("user", ""),
        device=values.get("device", ""),
        cursor=int(cursor) if cursor.isdigit() else 0,
        last_sync=values.get("last_sync", ""),
    )


def remember_login(db: Database, *, url: str, user: str, device: str) -> bool:
    """Record who this device is on which server.

    A different server or user than before starts over: cursor 0, and every
    local row queued for push, since the new account has none of it.

    Returns:
        True when the device starts over with a new server or user.
    """
    before = load_state(db)
    fresh = bool(before.url) and (before.url, before.user) != (url, user)
    if fresh:
        store.requeue_everything(db)
    values = {"url": url, "user": user, "device": device}
    if fresh or not before.url:
        values |= {"cursor": "0", "last_sync": ""}
    store.write_state(db, values)
    return fresh


def record_sync(db: Database) -> None:
    store.write_state(db, {"last_sync": utc_now()})
