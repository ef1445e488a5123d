"""Frozen records the server store returns about users and device tokens.

Must not import: SQLAlchemy, the core, the provider, websockets, redis.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class User:
    id: str
    name: str
    created_at: str


@dataclass(frozen=True)
class TokenInfo:
    """A device token's record. The token itself is never kept, only its hash."""

    id: str
    user_id: str
    device: str
    created_at: str
    last_used_at: str | None
    revoked: bool


@dataclass(frozen=True)
class Principal:
    """Who a connection is, once its token checked out."""

    user_id: str
    user_name: str
    device: str
    token_id: str
