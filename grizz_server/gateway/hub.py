"""Live fan-out across gateways: which of a user's devices are connected here.

Each gateway subscribes (one Redis pub/sub connection) to the change channel
of every user with at least one device connected to it, and hands each event
to those devices' connections. So a message sent through gateway A reaches the
user's phone on gateway B, and no gateway sees other users' traffic.

The same connection hears `keys.TOKENS_REVOKED` (a device token was revoked:
the gateway re-checks and closes that token's connections, see
`gateway/revocation.py`).

Pub/sub is fire-and-forget; what it can lose during a Redis outage a device
recovers with `pull` after its cursor, and after every reconnect to Redis the
hub tells each connection the current cursor so it knows to pull.

Must not import: the store, the core, textual.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from grizz_server import keys
from grizz_server.aio import check_cancelled

log = logging.getLogger(__name__)


class Listener(Protocol):
    user_id: str

    async def on_event(self, event: dict[str, Any]) -> None: ...


class Hub:
    """user id → connected listeners, fed from Redis pub/sub."""

    def __init__(
        self,
        redis: Redis,
        *,
        on_reconnect: Callable[[str], Awaitable[None]] | None = None,
        on_revoked: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.redis = redis
        self.users: dict[str, set[Listener]] = {}
        self.on_reconnect = on_reconnect
        self.on_revoked = on_revoked
        self._pubsub: PubSub | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.aclose()

    async def add(self, listener: Listener) -> None:
        async with self._lock:
            first = listener.user_id not in self.users
            self.users.setdefault(listener.user_id, set()).add(listener)
            if first and self._pubsub is not None:
                with contextlib.suppress(RedisError, OSError):
                    await self._pubsub.subscribe(keys.user_changes(listener.user_id))

    async def remove(self, listener: Listener) -> None:
        async with self._lock:
            group = self.users.get(listener.user_id)
            if group is None:
                return
            group.discard(listener)
            if not group:
                del self.users[listener.user_id]
                if self._pubsub is not None:
                    with contextlib.suppress(RedisError, OSError):
                        await self._pubsub.unsubscribe(
                            keys.user_changes(listener.user_id)
                        )

    async def _connect(self) -> PubSub:
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        async with self._lock:
            channels = [keys.user_changes(user) for user in self.users]
            await pubsub.subscribe(
                f"{keys.PREFIX}:gateway:keepalive", keys.TOKENS_REVOKED, *channels
            )
            self._pubsub = pubsub
        return pubsub

    async def _listen(self) -> None:
        reconnecting = False
        while True:
            check_cancelled()
            try:
                pubsub = await self._connect()
                if reconnecting:
                    await self._announce_reconnect()
                while True:
                    check_cancelled()
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        await self._dispatch(message)
            except (RedisError, OSError) as exc:
                log.warning("pub/sub lost; reconnecting", extra={"error": str(exc)})
                self._pubsub = None
                reconnecting = True
                await asyncio.sleep(0.5)

    async def _announce_reconnect(self) -> None:
        if self.on_reconnect is not None:
            for user in list(self.users):
                with contextlib.suppress(Exception):
                    await self.on_reconnect(user)

    async def _dispatch(self, message: dict[str, Any]) -> None:
        channel = message.get("channel", b"")
        channel = channel.decode() if isinstance(channel, bytes) else str(channel)
        if channel == keys.TOKENS_REVOKED:
            data = message.get("data", b"")
            ref = data.decode(errors="replace") if isinstance(data, bytes) else ""
            if self.on_revoked is not None and ref:
                try:
                    await self.on_revoked(ref)
                except Exception:  # a bad message must not stop the hub
                    log.exception("could not handle a revoked token")
            return
        user = channel.removeprefix(f"{keys.PREFIX}:user:").removesuffix(":changes")
        try:
            event = json.loads(message["data"])
        except (ValueError, TypeError):
            return
        if isinstance(event, dict):
            await self.broadcast(user, event)

    async def broadcast(self, user_id: str, event: dict[str, Any]) -> None:
        """Deliver `event` to this gateway's listeners of `user_id` directly."""
        for listener in list(self.users.get(user_id, ())):
            try:
                await listener.on_event(event)
            except Exception:  # one bad event or device must not stop the hub
                log.exception("could not deliver a live event", extra={"user": user_id})
