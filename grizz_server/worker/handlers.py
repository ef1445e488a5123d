"""`generate_reply(ctx, attempt)`: one attempt at answering one user message.

The same `ChatSession.respond` as `grizz ask` (persona, context within the
token budget, memory tools) runs against the user's server store. Every chunk
goes to the job's output stream through the fenced `append`, the reply row is
written under the job's reply id, and the job is acknowledged (`finish`) only
after the reply is stored. A redelivered job whose reply is already complete
re-publishes `done` without calling the model again.

Must not import: websockets, textual.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from grizz_server import keys
from grizz_server.queue.jobs import Attempt, JobQueue
from grizz_server.store import ServerStore, UserStore
from grizz_tui.config import Settings
from grizz_tui.core.provider import Provider, TextDelta
from grizz_tui.core.session import ReplyFinished, ToolUsed
from grizz_tui.core.setup import make_session
from grizz_tui.store.models import Message, Status

log = logging.getLogger(__name__)


class Fenced(Exception):
    """Another attempt owns the job now; this one must stop writing."""


@dataclass
class WorkerContext:
    """What every attempt needs, opened once per worker process."""

    redis: Redis
    queue: JobQueue
    store: ServerStore
    provider: Provider
    app: Settings


async def generate_reply(ctx: WorkerContext, attempt: Attempt) -> Message:
    """Stream, store and publish the reply; return the stored reply.

    Raises:
        Fenced: the job was taken over by another attempt.
        GrizzError: the provider or the store failed (the runner decides on
            retry or dead letter).
    """
    user_store = ctx.store.for_user(attempt.delivery.user_id)
    # only a later attempt can find the reply already stored (by an attempt
    # that died between storing it and acknowledging the job)
    existing = (
        await user_store.get_message(attempt.reply_id) if attempt.attempt > 1 else None
    )
    if existing is not None and existing.status == Status.COMPLETE:
        log.info("reply already stored; re-publishing", extra={"job": _job(attempt)})
        return await _finish(ctx, attempt, user_store, existing)
    user_message = await user_store.get_message(attempt.message_id)
    if user_message is None:
        raise LookupError("The message this job answers no longer exists.")
    # make_session sizes the context to the provider (a local model's window
    # and compact persona) exactly as `grizz ask` does; the day is the user's.
    session = make_session(
        ctx.app, FencedStore(user_store, ctx.queue, attempt), ctx.provider
    )
    session.tz = attempt.tz or ctx.app.timezone
    final: Message | None = None
    events = session.respond(user_message, reply_id=attempt.reply_id)
    async with contextlib.aclosing(events):
        async for event in events:
            if isinstance(event, TextDelta):
                if not await ctx.queue.append(attempt, "chunk", event.text):
                    raise Fenced
            elif isinstance(event, ToolUsed):
                if not await ctx.queue.append(
                    attempt, "tool", event.name, event.summary
                ):
                    raise Fenced
            elif isinstance(event, ReplyFinished):
                final = event.message
    if final is None:  # respond() always ends with ReplyFinished or raises
        raise RuntimeError("The reply ended without a final message.")
    return await _finish(ctx, attempt, user_store, final)


async def _finish(
    ctx: WorkerContext, attempt: Attempt, store: UserStore, message: Message
) -> Message:
    data = message.to_dict()
    if not await ctx.queue.finish(attempt, data):
        raise Fenced
    try:  # the job is done; a lost notice only delays other devices until they pull
        await publish_change(ctx.redis, store, attempt.delivery.user_id, [message])
    except Exception:
        log.warning(
            "could not publish the change", exc_info=True, extra={"job": _job(attempt)}
        )
    return message


async def publish_change(
    redis: Redis, store: UserStore, user_id: str, messages: Sequence[Message]
) -> None:
    """Tell every gateway holding one of the user's devices that data changed."""
    cursor = await store.current_seq()
    event = {
        "kind": "changed",
        "cursor": cursor,
        "changes": [
            {"seq": cursor, "entity": "messages", "id": m.id, "data": m.to_dict()}
            for m in messages
        ],
    }
    await redis.publish(keys.user_changes(user_id), json.dumps(event))


def _job(attempt: Attempt) -> str:
    return attempt.delivery.job_id


class FencedStore:
    """The user's store, refusing writes once another attempt owns the job.

    Redis writes are fenced atomically (in Lua); database writes are checked
    just before they happen, which leaves only the instant between the check
    and the write for a paused zombie to slip through, and the new attempt
    rewrites the whole reply row after that anyway.
    """

    def __init__(self, store: UserStore, queue: JobQueue, attempt: Attempt) -> None:
        self._store = store
        self._queue = queue
        self._attempt = attempt

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def _check(self) -> None:
        if not await self._queue.still_owner(self._attempt):
            raise Fenced

    async def start_reply(self, **kwargs: Any) -> Message:
        await self._check()
        return await self._store.start_reply(**kwargs)

    async def update_message(self, message_id: str, **kwargs: Any) -> None:
        await self._check()
        await self._store.update_message(message_id, **kwargs)

    async def remember(self, content: str, *, title: str = "") -> Any:
        await self._check()
        return await self._store.remember(content, title=title)

    async def forget(self, memory_id: str) -> Any:
        await self._check()
        return await self._store.forget(memory_id)
