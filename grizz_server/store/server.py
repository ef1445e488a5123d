"""`ServerStore`: opening the server database, users and device tokens.

Device tokens are random 256-bit strings shown once; the database keeps only
their SHA-256, so a leaked database does not leak working tokens. Nothing here
logs or returns a token except `add_token`'s one-time return value.

Must not import: the core, the provider, websockets, redis.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select, text, update

from grizz_core import paths
from grizz_core.domain import utc_now
from grizz_core.errors import StoreError, UsageError

from . import statements as q
from .backend import RejectedData, StoreBackend
from .engine import parse_url
from .factory import open_backend
from .migrations import LATEST, applied_versions, migrate
from .models import Principal, TokenInfo, User
from .schema import attachments, conversations, memory, messages, tokens, users
from .user import UserStore

TOKEN_PREFIX = "grz_"
LAST_USED_GRANULARITY = 60.0
"""Seconds: `last_used_at` is rewritten at most this often per token."""
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class ServerStore:
    """The server's database: users, tokens, and per-user stores (`for_user`)."""

    def __init__(self, backend: StoreBackend) -> None:
        self._backend = backend

    @classmethod
    async def open(cls, url: str, *, pool_size: int = 8) -> ServerStore:
        """Connect to `url` (`sqlite:///path` or `postgresql://…`) and migrate it.

        Raises:
            StoreError: one sentence saying why the database cannot be used.
        """
        target = parse_url(url)
        if target.path is not None and target.path.parent == paths.data_dir():
            paths.ensure_private_dir(target.path.parent)
        if target.path is not None and not target.path.parent.is_dir():
            raise StoreError(
                f"Cannot create the database {target.path}: its directory does "
                "not exist."
            )
        backend = open_backend(target, pool_size=pool_size)
        try:
            await migrate(backend)
        except BaseException:
            await backend.dispose()
            raise
        return cls(backend)

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return self._backend.dialect

    async def close(self) -> None:
        await self._backend.dispose()

    async def check(self) -> None:
        """Raise `StoreError` (one sentence) unless the database answers, up to date."""
        async with self._backend.read() as conn:
            await conn.execute(text("SELECT 1"))
        versions = await applied_versions(self._backend)
        if max(versions, default=0) != LATEST:
            raise StoreError(
                f"The server database is at schema version {max(versions, default=0)}, "
                f"expected {LATEST}; restart grizz-server to migrate it."
            )

    def for_user(self, user_id: str) -> UserStore:
        """The store of one user's conversations, messages and memory."""
        return UserStore(self._backend, user_id)

    # -- users --------------------------------------------------------------

    async def add_user(self, name: str) -> User:
        """Create a user.

        Raises:
            UsageError: the name is not valid or already taken.
        """
        _check_name(name)
        user = User(id=str(uuid.uuid4()), name=name, created_at=utc_now())
        try:
            async with self._backend.write() as conn:
                await conn.execute(
                    users.insert().values(
                        id=user.id, name=user.name, created_at=user.created_at, seq=0
                    )
                )
        except RejectedData:
            raise UsageError(f"A user named '{name}' already exists.") from None
        return user

    async def get_user(self, name: str) -> User | None:
        async with self._backend.read() as conn:
            row = (
                await conn.execute(select(users).where(users.c.name == name))
            ).first()
        return _user(row._mapping) if row else None

    async def list_users(self) -> list[User]:
        async with self._backend.read() as conn:
            rows = await conn.execute(select(users).order_by(users.c.name))
            return [_user(row._mapping) for row in rows]

    async def _require_user(self, name: str) -> User:
        user = await self.get_user(name)
        if user is None:
            raise UsageError(
                f"There is no user named '{name}'; add it with `users add`."
            )
        return user

    async def delete_user(self, name: str) -> list[str]:
        """Delete a user and all their data in one transaction.

        Attachments, messages, conversations, memory (tombstones and change
        numbers with them), device tokens and the user row go together or not
        at all.

        Returns:
            The ids of the user's device tokens (to close their connections).

        Raises:
            UsageError: there is no such user.
        """
        user = await self._require_user(name)
        async with self._backend.write() as conn:
            token_ids = list(
                (
                    await conn.execute(
                        select(tokens.c.id).where(tokens.c.user_id == user.id)
                    )
                )
                .scalars()
                .all()
            )
            for table in (attachments, messages, conversations, memory, tokens):
                await conn.execute(delete(table).where(table.c.user_id == user.id))
            await conn.execute(delete(users).where(users.c.id == user.id))
        return token_ids

    async def user_data_counts(self, name: str) -> dict[str, int]:
        """How many conversations, messages, memory items and tokens a user has."""
        user = await self._require_user(name)
        counts: dict[str, int] = {}
        async with self._backend.read() as conn:
            for label, table in (
                ("conversations", conversations),
                ("messages", messages),
                ("memory items", memory),
                ("device tokens", tokens),
            ):
                counts[label] = int(
                    (
                        await conn.execute(
                            select(func.count())
                            .select_from(table)
                            .where(table.c.user_id == user.id)
                        )
                    ).scalar_one()
                )
        return counts

    async def rename_user(self, old: str, new: str) -> User:
        """Give a user a new name (their id, data and tokens stay).

        Raises:
            UsageError: no user `old`, `new` is not valid or already taken.
        """
        _check_name(new)
        user = await self._require_user(old)
        try:
            async with self._backend.write() as conn:
                await conn.execute(
                    update(users).where(users.c.id == user.id).values(name=new)
                )
        except RejectedData:
            raise UsageError(f"A user named '{new}' already exists.") from None
        return User(id=user.id, name=new, created_at=user.created_at)

    async def user_names(self) -> dict[str, str]:
        """Every user's name by id."""
        return {user.id: user.name for user in await self.list_users()}

    # -- tokens -------------------------------------------------------------

    async def add_token(self, user_name: str, device: str) -> tuple[str, TokenInfo]:
        """Issue a device token; the plaintext is returned here and never again.

        Raises:
            UsageError: unknown user or an empty/too long device name.
        """
        device = (device or "").strip()
        if not device or len(device) > 64 or not device.isprintable():
            raise UsageError("The device name must be 1-64 printable characters.")
        user = await self._require_user(user_name)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        info = TokenInfo(
            id=secrets.token_hex(6),
            user_id=user.id,
            device=device,
            created_at=utc_now(),
            last_used_at=None,
            revoked=False,
        )
        async with self._backend.write() as conn:
            await conn.execute(
                tokens.insert().values(
                    id=info.id,
                    user_id=info.user_id,
                    device=info.device,
                    token_hash=hash_token(token),
                    created_at=info.created_at,
                    last_used_at=None,
                    revoked=0,
                )
            )
        return token, info

    async def list_tokens(self, user_name: str | None = None) -> list[TokenInfo]:
        """A user's tokens (revoked ones too), oldest first; every user's when
        `user_name` is None."""
        query = select(tokens).order_by(tokens.c.created_at, tokens.c.id)
        if user_name is not None:
            user = await self._require_user(user_name)
            query = query.where(tokens.c.user_id == user.id)
        async with self._backend.read() as conn:
            rows = await conn.execute(query)
            return [_token(row._mapping) for row in rows]

    async def revoke_token(self, token_id: str) -> bool:
        """Revoke a token by id or unique id prefix (≥ 4 characters).

        Returns:
            True if such a token exists (it is revoked now), False if none does.

        Raises:
            UsageError: the prefix matches several tokens.
        """
        ref = (token_id or "").strip().lower()
        if len(ref) < 4 or not all(c in "0123456789abcdef" for c in ref):
            return False
        async with self._backend.write() as conn:
            rows = (
                (
                    await conn.execute(
                        select(tokens.c.id)
                        .where(tokens.c.id.startswith(ref, autoescape=True))
                        .limit(2)
                    )
                )
                .scalars()
                .all()
            )
            if len(rows) > 1:
                raise UsageError(
                    f"'{token_id}' matches several tokens; give more of the id."
                )
            if rows:
                await conn.execute(
                    update(tokens).where(tokens.c.id == rows[0]).values(revoked=1)
                )
        return bool(rows)

    async def authenticate(self, token: str) -> Principal | None:
        """The principal a live token belongs to; None if unknown or revoked."""
        if not isinstance(token, str) or not 16 <= len(token) <= 256:
            return None
        rows = await self._backend.fetch(q.authenticate, {"k_hash": hash_token(token)})
        if not rows:
            return None
        token_id, user_id, device, last_used_at, user_name = rows[0]
        await self._touch(token_id, last_used_at)
        return Principal(
            user_id=user_id, user_name=user_name, device=device, token_id=token_id
        )

    async def live_tokens(self, token_ids: Sequence[str]) -> set[str]:
        """Those of `token_ids` that still exist and are not revoked (one query
        per 500 ids): revoking a token also cuts off the connections it opened."""
        live: set[str] = set()
        ids = sorted(set(token_ids))
        async with self._backend.read() as conn:
            for start in range(0, len(ids), 500):
                rows = await conn.execute(
                    select(tokens.c.id).where(
                        tokens.c.id.in_(ids[start : start + 500]), tokens.c.revoked == 0
                    )
                )
                live.update(row[0] for row in rows)
        return live

    async def _touch(self, token_id: str, last_used_at: str | None) -> None:
        now = dt.datetime.now(dt.UTC)
        if last_used_at is not None:
            seen = dt.datetime.fromisoformat(last_used_at)
            if (now - seen).total_seconds() < LAST_USED_GRANULARITY:
                return
        stamp = now.isoformat(timespec="microseconds")
        async with self._backend.write() as conn:
            await conn.run(q.touch_token, {"k_id": token_id, "v_last_used_at": stamp})


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise UsageError(
            f"'{name}' is not a valid user name: use 1-64 letters, digits, "
            "'.', '_' or '-', starting with a letter or digit."
        )


def _user(row: Any) -> User:
    return User(id=row["id"], name=row["name"], created_at=row["created_at"])


def _token(row: Any) -> TokenInfo:
    return TokenInfo(
        id=row["id"],
        user_id=row["user_id"],
        device=row["device"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        revoked=bool(row["revoked"]),
    )
