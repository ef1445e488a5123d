"""`generate_reply(ctx, attempt)`: one attempt at answering one user message.

The same `ChatSession.respond` as `grizz ask` (persona, context within the
token budget, memory tools) runs against the user's server store. Chunks go
to the job's output stream through the fenced `append`, batched while one is
on its way (`Output`); the reply row is written once, whole, under the job's
reply id (`AttemptStore`), and the job is acknowledged (`finish`, which also
writes the last chunks, `done` and the change event) only after the reply is
stored. A redelivered job whose reply is already complete
re-publishes `done` without calling the model again.

Must not import: websockets, textual.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from redis.asyncio import Redis

from grizz_core.companion.session import ReplyFinished, ToolUsed, make_session_for
from grizz_core.domain import Message, Role, Status, utc_now
from grizz_core.errors import StoreError
from grizz_core.providers.base import Provider, TextDelta
from grizz_server.queue.jobs import Attempt, Entry
from grizz_server.queue.leases import JobLeases
from grizz_server.settings import ServerSettings
from grizz_server.store import ServerStore, UserStore
from grizz_server.store.user import merge_patch
from grizz_server.timings import FIRST_TOKEN, PROVIDER_LATENCY, Timings

log = logging.getLogger(__name__)


class Fenced(Exception):
    """Another attempt owns the job now; this one must stop writing."""


@dataclass
class WorkerContext:
    """What every attempt needs, opened once per worker process."""

    redis: Redis
    queue: JobLeases
    store: ServerStore
    provider: Provider
    settings: ServerSettings
    timings: Timings = field(default_factory=Timings)
    """Observations flushed to Redis with each heartbeat (/metrics)."""


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
    user_message = await _user_message(user_store, attempt)
    # the context fits the provider (a local model's window and compact
    # persona) exactly as `grizz ask`'s does; the day is the user's.
    session = make_session_for(
        ctx.settings,
        AttemptStore(user_store, ctx.queue, attempt),
        ctx.provider,
        tz=attempt.tz,
    )
    final: Message | None = None
    output = Output(ctx.queue, attempt)
    started, first = time.monotonic(), True
    try:
        events = session.respond(user_message, reply_id=attempt.reply_id)
        async with contextlib.aclosing(events):
            async for event in events:
                if isinstance(event, TextDelta):
                    if first:
                        first = False
                        ctx.timings.observe(FIRST_TOKEN, time.monotonic() - started)
                    await output.add("chunk", event.text)
                elif isinstance(event, ToolUsed):
                    await output.add("tool", event.name, event.summary)
                elif isinstance(event, ReplyFinished):
                    final = event.message
        if final is None:  # respond() always ends with ReplyFinished or raises
            raise RuntimeError("The reply ended without a final message.")
        ctx.timings.observe(PROVIDER_LATENCY, time.monotonic() - started)
        return await _finish(ctx, attempt, user_store, final, await output.rest())
    finally:
        await output.close()


async def _user_message(store: UserStore, attempt: Attempt) -> Message:
    """The message the job answers, in the store before the model sees it.

    The job carries the message. Normally the gateway has stored it by the
    time a worker begins (its write starts as soon as the job is queued); if
    not — the write is still on its way, or the gateway died after queueing —
    the worker stores it from the job, so a message is persisted before it is
    sent anywhere (DESIGN, guarantee 1) and a queued job's message is never
    lost. An id that holds a different message raises `MessageConflict`. A job
    queued before messages travelled with jobs finds its message stored.
    """
    stored = await store.get_message(attempt.message_id)
    if not attempt.text:
        if stored is None:
            raise LookupError("The message this job answers no longer exists.")
        return stored
    if stored is None:
        await store.ensure_day(attempt.day, attempt.zone or "UTC")
        try:
            return await store.add_message(
                conversation_id=attempt.conversation_id,
                role=Role.USER,
                content=attempt.text,
                message_id=attempt.message_id,
            )
        except StoreError:
            stored = await store.get_message(attempt.message_id)
            if stored is None:
                raise  # the database failed: retried
    if (stored.conversation_id, stored.role, stored.content) != (
        attempt.conversation_id,
        Role.USER,
        attempt.text,
    ):
        raise MessageConflict(
            f"Message id {attempt.message_id} is already used by another message."
        )
    return stored


class MessageConflict(LookupError):
    """The job's message id now belongs to a different message (not retried)."""


class Output:
    """An attempt's entries on its job's output stream, appended in batches.

    The first entry goes to Redis at once. Entries that arrive while an append
    is on its way wait and go together in the next one (consecutive chunks
    joined into one), so a fast model costs a round trip per batch, not per
    token, and a slow one still sends each token as it comes. `finish` hands
    whatever is left to the job's FINISH script, which writes it before `done`.
    Every append is fenced: a taken-over attempt raises `Fenced`.
    """

    def __init__(self, queue: JobLeases, attempt: Attempt) -> None:
        self.queue = queue
        self.attempt = attempt
        self.pending: list[Entry] = []
        self._flight: asyncio.Task[None] | None = None

    async def add(self, kind: str, text: str, extra: str = "") -> None:
        last = self.pending[-1] if self.pending else None
        if kind == "chunk" and last is not None and last[0] == "chunk":
            self.pending[-1] = ("chunk", last[1] + text, "")
        else:
            self.pending.append((kind, text, extra))
        if self._flight is not None:
            if not self._flight.done():
                return
            await self._settle()  # raises what the last append raised
        self._flight = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        while self.pending:
            batch, self.pending = self.pending, []
            if not await self.queue.append(self.attempt, batch):
                raise Fenced

    async def _settle(self) -> None:
        flight, self._flight = self._flight, None
        if flight is not None:
            await flight

    async def rest(self) -> list[Entry]:
        """Wait for the append on its way; the entries not yet written."""
        await self._settle()
        rest, self.pending = self.pending, []
        return rest

    async def close(self) -> None:
        """Stop an append still on its way (the attempt failed or was cancelled)."""
        flight, self._flight = self._flight, None
        if flight is not None and not flight.done():
            flight.cancel()
        if flight is not None:
            with contextlib.suppress(BaseException):
                await flight


async def _finish(
    ctx: WorkerContext,
    attempt: Attempt,
    store: UserStore,
    message: Message,
    entries: Sequence[Entry] = (),
) -> Message:
    """Write the last `entries` and `done`, ack the job and tell the user's
    devices, in one script; a lost notice only delays other devices until
    they pull."""
    event = await change_event(store, [message])
    if not await ctx.queue.finish(
        attempt, message.to_dict(), entries=entries, event=event
    ):
        raise Fenced
    return message


async def change_event(store: UserStore, messages: Sequence[Message]) -> dict[str, Any]:
    """The `changed` event telling a user's devices these messages changed."""
    cursor = await store.current_seq()
    return {
        "kind": "changed",
        "cursor": cursor,
        "changes": [
            {"seq": cursor, "entity": "messages", "id": m.id, "data": m.to_dict()}
            for m in messages
        ],
    }


def _job(attempt: Attempt) -> str:
    return attempt.delivery.job_id


class AttemptStore:
    """The user's store as one attempt sees it: fenced, with the reply written once.

    Fencing: Redis writes are fenced atomically (in Lua); database writes are
    checked just before they happen, which leaves only the instant between
    the check and the write for a paused zombie to slip through, and the new
    attempt rewrites the whole reply row after that anyway.

    The reply row: on a device the row is written `streaming` at once and
    saved as it grows, because the device's store is the only copy. Here the
    job's output stream in Redis already holds every chunk until the job is
    acknowledged, so the row is written once, whole, when the attempt ends
    (`complete`, `error` or `interrupted`) and before the job is acknowledged:
    one write transaction per reply instead of three or more. A device that
    pulls mid-reply sees the user's message and, in `welcome.active_jobs` or
    a `job` event, the job whose stream it can follow.
    """

    def __init__(self, store: UserStore, queue: JobLeases, attempt: Attempt) -> None:
        self._store = store
        self._queue = queue
        self._attempt = attempt
        self._reply: Message | None = None
        self._saved = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def _check(self) -> None:
        if not await self._queue.still_owner(self._attempt):
            raise Fenced

    async def start_reply(
        self,
        *,
        reply_id: str,
        conversation_id: str,
        model: str,
        metadata: dict[str, Any],
    ) -> Message:
        await self._check()
        now = utc_now()
        self._reply = Message(
            id=reply_id,
            conversation_id=conversation_id,
            role=Role.ASSISTANT,
            content="",
            status=Status.STREAMING,
            created_at=now,
            updated_at=now,
            model=model,
            metadata=metadata,
        )
        self._saved = False
        return self._reply

    async def update_message(
        self,
        message_id: str,
        *,
        content: str | None = None,
        status: Status | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        reply = self._reply
        if reply is None or message_id != reply.id:
            await self._check()
            await self._store.update_message(
                message_id, content=content, status=status, metadata=metadata
            )
            return
        reply = replace(
            reply,
            content=reply.content if content is None else content,
            status=reply.status if status is None else Status(status),
            metadata=reply.metadata
            if metadata is None
            else merge_patch(reply.metadata, metadata),
        )
        self._reply = reply
        if reply.status == Status.STREAMING:
            return  # the output stream holds it until the attempt ends
        await self._check()
        self._reply = await self._store.save_reply(
            reply_id=reply.id,
            conversation_id=reply.conversation_id,
            model=reply.model,
            content=reply.content,
            status=reply.status,
            metadata=reply.metadata,
        )
        self._saved = True

    async def get_message(self, message_id: str) -> Message | None:
        if self._saved and self._reply is not None and message_id == self._reply.id:
            return self._reply
        return await self._store.get_message(message_id)

    async def remember(self, content: str, *, title: str = "") -> Any:
        await self._check()
        return await self._store.remember(content, title=title)

    async def forget(self, memory_id: str) -> Any:
        await self._check()
        return await self._store.forget(memory_id)
