"""The grizz-server store: users, device tokens and every user's synced data.

SQLAlchemy Core statements over SQLite (default, one machine; the sqlite3
driver run inline, see `engine.py`) or PostgreSQL (asyncpg; several gateways
and workers), through one `StoreBackend` interface: one code path. Every user-data
row is keyed by `(user_id, id)` and every query filters on `user_id`; every
write takes the next number(s) of the user's change sequence, the sync cursor.

Must not import: the provider, websockets, redis, textual.
"""

from __future__ import annotations

from grizz_core.errors import StoreError

from .engine import default_db_url
from .models import Principal, TokenInfo, User
from .server import ServerStore
from .user import UserStore

__all__ = [
    "Principal",
    "ServerStore",
    "StoreError",
    "TokenInfo",
    "User",
    "UserStore",
    "default_db_url",
]
