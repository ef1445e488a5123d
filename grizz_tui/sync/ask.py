"""`grizz ask` through the sync server, with the direct fallback.

The message is stored on the device first (and marked pending), so nothing is
lost whatever happens next. Connected: the outbox and older pending messages
go up, then the message with `send`; the reply streams from the server's
frames and is stored as it arrives (quietly: the server's row is the truth),
ending with the server's `done.message`. Server away: answer directly when a
provider is usable and `sync.fallback` allows it (both messages then wait in
the outbox), or keep the message pending and say so.

Must not import: textual.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from grizz_core import days
from grizz_core import protocol as p
from grizz_core.domain import Message, Status
from grizz_core.errors import GrizzError
from grizz_tui.config import Settings
from grizz_tui.store import sync as store
from grizz_tui.store.conversations import recover_orphans
from grizz_tui.store.db import Database, open_database
from grizz_tui.sync.client import (
    ServerUnreachable,
    SyncClient,
    TokenRefused,
    backoff_delays,
)
from grizz_tui.sync.engine import SyncEngine
from grizz_tui.sync.reply import JobRef, ReplyTracker, ReplyUpdate

Consume = Callable[[AsyncIterator[Any]], Awaitable[dict[str, Any]]]
"""Turns session events into `grizz ask`'s result (ask.py renders them)."""
RECONNECT_FOR = 30.0
"""Seconds to keep reconnecting to follow a reply after the connection drops."""


class PendingSaved(GrizzError):
    """The message is stored and will be sent by the next sync (exit 1)."""


class ReplyFailed(GrizzError):
    """The server gave up on the reply (exit 1); the message stays stored."""


def server_token() -> str | None:
    from grizz_tui import secrets

    found = secrets.get_key("server")
    return found.value if found else None


def make_client(settings: Settings, token: str) -> SyncClient:
    return SyncClient(
        settings.server_url,
        token,
        ca_file=settings.sync_ca_file,
        insecure=settings.sync_insecure,
    )


async def ask_via_server(
    settings: Settings,
    prompt: str,
    token: str,
    *,
    writer: Any,
    consume: Consume,
    stream: bool,
) -> dict[str, Any]:
    """Ask through the server at `settings.server_url` with device `token`."""
    client = make_client(settings, token)
    db = open_database()
    recover_orphans(db)
    day = days.today(settings.timezone)
    message = store.store_outgoing(
        db, day=day, tz=days.tz_name(settings.timezone), text=prompt
    )
    frames: asyncio.Queue[p.Frame | None] = asyncio.Queue()
    client.add_listener(frames.put_nowait)
    try:
        try:
            await client.open(timeout=5)
            engine = SyncEngine(db, client)
            await engine.push()
            await engine.send_pending(wait_replies=False, exclude=message.id)
        except ServerUnreachable as exc:  # nothing of this message went up yet
            return await _direct(settings, db, message, consume, exc)
        except TokenRefused as exc:
            raise TokenRefused(f"Saved; {exc.message}") from None
        accepted = await _send(client, message, day, settings.timezone)
        store.settle_sent(db, accepted.message)
        follower = _Follower(db, writer, stream, accepted, frames)
        return await follower.follow(client)
    finally:
        await client.close()
        db.close()


async def _send(client: SyncClient, message: Message, day: str, tz: str) -> p.Accepted:
    """Send the stored message; on failure it stays pending for the next sync."""
    try:
        return await client.request(
            p.Send(
                text=message.content,
                message_id=message.id,
                day=day,
                tz=tz if "/" in tz else "",
            ),
            p.Accepted,
        )
    except ServerUnreachable as exc:
        raise PendingSaved(f"Saved; {exc} It will be sent on the next sync.") from None


async def _direct(
    settings: Settings,
    db: Database,
    message: Message,
    consume: Consume,
    why: ServerUnreachable,
) -> dict[str, Any]:
    from grizz_tui.factory import make_provider, make_session
    from grizz_tui.store.local import LocalChatStore

    saved = PendingSaved(
        "Saved; the server is unreachable: it will be sent on the next sync."
    )
    if not settings.sync_fallback:
        raise saved
    try:
        provider = make_provider(settings)
    except GrizzError:
        raise saved from None
    store.clear_pending(db, message.id)  # answered here; both rows go up as rows
    print(f"grizz: {why} Answering directly; `grizz sync` sends both.", file=sys.stderr)
    try:
        session = make_session(settings, LocalChatStore(db), provider)
        result = await consume(session.respond(message))
    finally:
        await provider.aclose()
    result["user_message_id"] = message.id
    return result


@dataclass
class _Follower:
    """Follows one job's reply frames (a `ReplyTracker`), printing them."""

    db: Database
    writer: Any
    stream: bool
    accepted: p.Accepted
    frames: asyncio.Queue[p.Frame | None]
    tools: list[dict[str, str]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    first_token: float | None = None
    tracker: ReplyTracker = field(init=False)

    def __post_init__(self) -> None:
        self.tracker = ReplyTracker(self.db, JobRef.of(self.accepted))

    async def follow(self, client: SyncClient) -> dict[str, Any]:
        accepted = self.accepted
        while True:
            frame = await self.frames.get()
            if frame is None:
                await self._reconnect(client)
                continue
            if getattr(frame, "job_id", "") != accepted.job_id:
                continue
            update = self.tracker.apply(frame)
            done = self._show(update) if update is not None else None
            if done is not None:
                return done

    def _show(self, update: ReplyUpdate) -> dict[str, Any] | None:
        if update.dropped:
            self._restarted()
        if update.kind == "text":
            if self.first_token is None:
                self.first_token = time.monotonic() - self.started
            if self.writer is not None and self.stream:
                self.writer.feed(update.text)
        elif update.kind == "retrying":
            print(f"grizz: {update.text} Trying again…", file=sys.stderr)
        elif update.kind == "tool":
            self.tools.append({"name": update.name, "summary": update.text})
            if self.writer is not None:
                print(f"🐻 {update.text}", file=sys.stderr)
        elif update.kind == "done":
            return self._finish(update.message)
        elif update.kind == "error":
            raise ReplyFailed(f"Grizz could not answer: {update.text}")
        return None

    def _restarted(self) -> None:
        if self.writer is not None and self.stream:
            self.writer.feed("\n")
            print("grizz: the reply started over.", file=sys.stderr)

    def _finish(self, message: dict[str, Any]) -> dict[str, Any]:
        if self.writer is not None and not self.stream:
            self.writer.feed(message.get("content", ""))
        meta = message.get("metadata") or {}
        result: dict[str, Any] = {"user_message_id": self.accepted.message_id}
        if self.tools:
            result["tools"] = self.tools
        elapsed = time.monotonic() - self.started
        return result | {
            "reply": message.get("content", ""),
            "conversation_id": message.get("conversation_id"),
            "message_id": message.get("id"),
            "model": meta.get("model") or message.get("model", ""),
            "usage": meta.get("usage", {}),
            "timing": {
                "elapsed_s": round(elapsed, 3),
                "first_token_s": None
                if self.first_token is None
                else round(self.first_token, 3),
            },
            "finish_reason": meta.get("finish_reason", "stop"),
            "status": message.get("status", "complete"),
        }

    async def _reconnect(self, client: SyncClient) -> None:
        """Reconnect and resume after the last entry seen, or give up."""
        deadline = time.monotonic() + RECONNECT_FOR
        for delay in backoff_delays(0.5, 5.0):
            with contextlib.suppress(ServerUnreachable):
                await client.close()
                await client.open(timeout=5)
                await client.send(
                    p.Resume(job_id=self.accepted.job_id, after=self.tracker.last_entry)
                )
                return
            if time.monotonic() + delay > deadline:
                break
            await asyncio.sleep(delay)
        self.tracker.store(Status.INTERRUPTED, force=True)
        raise ServerUnreachable(
            "The connection to the server was lost; the reply will arrive "
            "with the next `grizz sync`."
        )
