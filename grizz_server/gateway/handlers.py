"""The frame handlers: what the gateway does for each frame a device sends.

A handler gets the gateway's `GatewayContext` (settings, queue, metrics)
and the `Device` the frame came in on, explicitly. Every handler
acts only on that device's own user: the store it uses is the connection's
`for_user` view, job ids are derived from the user id, and a job named by a
device is served only after checking its owner. Refusals raise
`ProtocolError` with the code the device sees.

Must not import: the gateway's server or connection (they build on this),
the core's session or provider, textual.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any, Protocol

from redis.exceptions import RedisError

from grizz_core import days
from grizz_core import protocol as p
from grizz_core.domain import Message, Role, day_conversation_id
from grizz_core.errors import ConfigError, ProtocolError, StoreError, UsageError
from grizz_server.gateway.announce import changed_budget
from grizz_server.gateway.context import GatewayContext
from grizz_server.gateway.entries import entry_frame
from grizz_server.gateway.streams import entry_after, is_terminal
from grizz_server.queue.admission import JobAdmission
from grizz_server.queue.jobs import JobMessage, job_id_for, reply_id_for
from grizz_server.store import UserStore
from grizz_server.store.pull import MAX_SEQ, pulled_bytes

log = logging.getLogger(__name__)


class Device(Protocol):
    """The connection a frame came in on, as far as the handlers use it."""

    user_id: str
    store: UserStore
    """The store as seen by this device's user."""

    async def emit(self, frame: p.Frame) -> None:
        """Send `frame` to the device (after those already queued)."""
        ...

    def follow(
        self, job_id: str, after: str = "0", *, fresh: bool = False, hold: bool = False
    ) -> None:
        """Stream job `job_id`'s output to the device from after entry `after`."""
        ...

    def unfollow(self, job_id: str) -> None:
        """Stop streaming job `job_id` to the device."""
        ...

    def is_following(self, job_id: str) -> bool:
        """True while job `job_id`'s output streams to the device."""
        ...

    def began(self, job_id: str, cursor: int) -> None:
        """Job `job_id` began at the user's cursor `cursor` (see announce.py)."""
        ...

    def release(self, job_id: str) -> None:
        """Send the frames of `job_id` held back until its `accepted` was out."""
        ...


class JobNotFound(ProtocolError):
    """A job the device named is not one of its user's (or is gone)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(
            "No such reply; pull to get the stored messages.", code=p.NOT_FOUND
        )
        self.job_id = job_id


class Refused(ProtocolError):
    """A refusal that tells the device when to try again."""

    def __init__(self, message: str, *, code: str, retry_after: float = 0.0) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


async def dispatch(ctx: GatewayContext, conn: Device, frame: p.Frame) -> None:
    """Answer one parsed frame from `conn`.

    Raises:
        ProtocolError: the frame is refused; its code is what the device sees.
    """
    if isinstance(frame, p.Send):
        await send(ctx, conn, frame)
    elif isinstance(frame, p.Resume):
        await resume(ctx, conn, frame)
    elif isinstance(frame, p.Pull):
        await pull(ctx, conn, frame)
    elif isinstance(frame, p.Push):
        await push(ctx, conn, frame)
    elif isinstance(frame, p.Ping):
        await conn.emit(p.Pong(ref=frame.ref))
    else:
        raise ProtocolError(
            "Already authenticated; 'hello' is only the first frame.", code=p.BAD_FRAME
        )


def _day_and_tz(frame: p.Send) -> tuple[str, str]:
    try:
        tz_name = days.tz_name(frame.tz) if frame.tz else "UTC"
        day = (
            days.parse_day(frame.day, frame.tz or "UTC")
            if frame.day
            else days.today(frame.tz or "UTC")
        )
    except (ConfigError, UsageError) as exc:
        raise ProtocolError(str(exc), code=p.BAD_FRAME) from None
    return day, tz_name


async def send(ctx: GatewayContext, conn: Device, frame: p.Send) -> None:
    """Queue the reply job (carrying the message), store the message, follow.

    Queueing comes first, in one script with admission, so a worker starts on
    the reply while the message is written here; a worker that begins before
    this write lands stores the message itself, before the model sees it. If
    the message cannot be stored here (its id belongs to another message, or
    the database failed) the job is withdrawn before the device hears of it:
    a re-send with the same id is admitted afresh.
    """
    settings = ctx.settings
    if len(frame.text) > settings.max_message_chars:
        raise ProtocolError(
            f"The message is {len(frame.text)} characters; the limit is "
            f"{settings.max_message_chars}.",
            code=p.TOO_LONG,
        )
    if not frame.text.strip():
        raise ProtocolError("The message is empty.", code=p.BAD_FRAME)
    day, zone = _day_and_tz(frame)
    message_id = frame.message_id or str(uuid.uuid4())
    job = JobMessage(
        job_id=job_id_for(conn.user_id, message_id),
        user_id=conn.user_id,
        message_id=message_id,
        conversation_id=day_conversation_id(day),
        day=day,
        zone=zone,
        tz=frame.tz,
        text=frame.text,
    )
    queue = ctx.queue
    # a re-send while the reply streams here: the stream goes on where it is
    # (following it again from "0" would repeat what the device already has)
    following = conn.is_following(job.job_id)
    if not following:  # before queueing, so no entry of the job comes before it
        conn.follow(job.job_id, "0", fresh=True, hold=True)
    try:
        admission = await queue.submit(job)
    except BaseException:
        if not following:
            conn.unfollow(job.job_id)
        raise
    if admission.status != "queued" and not following:
        conn.unfollow(job.job_id)
    if admission.status == "exists":
        existing = await _existing(conn, job, same_day=bool(frame.day))
        await _accept(conn, frame, job.job_id, existing, True)
        return
    _refuse(admission.status, admission.retry_after_ms)
    try:
        message, new_day = await _store(conn, job)
    except ProtocolError:
        conn.unfollow(job.job_id)
        await queue.cancel(conn.user_id, job.job_id)
        raise
    ctx.metrics.inc("grizz_jobs_accepted_total")
    try:
        event = await _job_event(conn, job.job_id, message, new_day)
        conn.began(job.job_id, event["cursor"])
        await _accept(conn, frame, job.job_id, message, False)
    finally:
        conn.release(job.job_id)  # its chunks, after `accepted`
    if new_day is not None:  # `accepted` carries the message, not its new day
        await conn.emit(p.Changed(cursor=event["cursor"], changes=[new_day]))
    await publish(queue, conn.user_id, event)


async def _store(
    conn: Device, job: JobMessage
) -> tuple[Message, dict[str, Any] | None]:
    """Store the job's message (idempotent: the worker may have stored it).

    Returns:
        The message, and the day's conversation as a change when this send
        created it.
    """
    try:
        day = await conn.store.create_day(job.day, job.zone)
        message = await conn.store.add_message(
            conversation_id=job.conversation_id,
            role=Role.USER,
            content=job.text,
            message_id=job.message_id,
        )
    except (StoreError, UsageError) as exc:
        raise ProtocolError(str(exc), code=p.CONFLICT) from None
    return message, day


async def _existing(conn: Device, job: JobMessage, *, same_day: bool) -> Message | None:
    """The message of a job sent before: the stored one, or stored now.

    A re-send can arrive before the first send's write (or after a gateway
    died between queueing and writing); then the message is stored from
    this frame, which must match. A stored message must match the re-send
    too: the same text, and the same day when the re-send names one (an
    empty `day` means "the day it was sent", so a re-send after midnight
    is still a duplicate); otherwise the id is a `conflict`.
    """
    message = await conn.store.get_message(job.message_id)
    if message is None:
        return (await _store(conn, job))[0]
    if (
        message.role != Role.USER
        or message.content != job.text
        or (same_day and message.conversation_id != job.conversation_id)
    ):
        raise ProtocolError(
            "This message id is already used by a different message; "
            "give a new message a new id.",
            code=p.CONFLICT,
        )
    return message


async def _job_event(
    conn: Device, job_id: str, message: Message, day: dict[str, Any] | None
) -> dict[str, Any]:
    """The event telling the user's devices: a new message (and, if this send
    created it, its day's conversation), and its reply is coming."""
    cursor = await conn.store.current_seq()
    changes = [] if day is None else [day]
    changes.append(
        {
            "seq": cursor,
            "entity": "messages",
            "id": message.id,
            "data": message.to_dict(),
        }
    )
    return {
        "kind": "job",
        "job_id": job_id,
        "message_id": message.id,
        "reply_id": reply_id_for(job_id),
        "conversation_id": message.conversation_id,
        "cursor": cursor,
        "changes": changes,
    }


def _refuse(status: str, retry_after_ms: int) -> None:
    if status == "rate":
        raise Refused(
            f"Slow down: too many messages; try again in "
            f"{max(1, round(retry_after_ms / 1000))} s.",
            code=p.RATE_LIMITED,
            retry_after=retry_after_ms / 1000,
        )
    if status == "busy":
        raise Refused(
            "Grizz is very busy right now; try again in a minute.",
            code=p.BUSY,
            retry_after=30.0,
        )
    if status == "too_many":
        raise Refused(
            "Grizz is still answering your earlier messages; send this one "
            "when a reply finishes.",
            code=p.TOO_MANY_JOBS,
            retry_after=5.0,
        )


async def _accept(
    conn: Device,
    frame: p.Send,
    job_id: str,
    message: Message | None,
    duplicate: bool,
) -> None:
    if message is None:
        raise ProtocolError(
            "This message id belongs to a message that no longer exists.",
            code=p.CONFLICT,
        )
    await conn.emit(
        p.Accepted(
            message_id=message.id,
            job_id=job_id,
            reply_id=reply_id_for(job_id),
            conversation_id=message.conversation_id,
            ref=frame.ref,
            duplicate=duplicate,
            message=message.to_dict(),
        )
    )
    if duplicate:  # a fresh job is followed since before it was queued
        conn.follow(job_id, "0")


async def resume(ctx: GatewayContext, conn: Device, frame: p.Resume) -> None:
    """Follow a job of this user's again, after the last entry the device saw.

    A device that already saw the job's last entry (or names a later one) gets
    that final `done` or `error` again, so it always learns the job is over.
    """
    owner = await ctx.queue.job_owner(frame.job_id)
    if owner != conn.user_id:  # another user's job looks exactly like a missing one
        raise JobNotFound(frame.job_id)
    conn.unfollow(frame.job_id)
    if frame.after != "0":
        last = await ctx.streams.last_entry(frame.job_id)
        if (
            last is not None
            and is_terminal(last[1])
            and not entry_after(last[0], frame.after)
        ):
            final = entry_frame(frame.job_id, *last)
            if final is not None:
                await conn.emit(final)
                return
    conn.follow(frame.job_id, frame.after)
    conn.began(frame.job_id, await conn.store.current_seq())


def page_overhead(ref: str) -> int:
    """Bytes of a `changes` frame around its changes, for this `ref`."""
    empty = p.Changes(changes=[], cursor=MAX_SEQ, has_more=False, ref=ref)
    return len(p.dump_frame(empty).encode())


WORST_REF = "\x01" * p.MAX_REF
"""The `ref` that takes the most bytes in JSON (each character as `\\u0001`)."""


async def pull(ctx: GatewayContext, conn: Device, frame: p.Pull) -> None:
    """Send the page of changes after the device's cursor, sized to fit a frame."""
    settings = ctx.settings
    limit = min(frame.limit, settings.max_pull)
    try:
        # a page ends early so the frame stays within the limit a device must
        # accept anyway (`max_frame_bytes`)
        changes, cursor, has_more = await conn.store.pull(
            frame.after,
            limit,
            max_bytes=settings.max_frame_bytes - page_overhead(frame.ref),
        )
    except UsageError as exc:
        raise ProtocolError(str(exc), code=p.BAD_FRAME) from None
    await conn.emit(
        p.Changes(changes=changes, cursor=cursor, has_more=has_more, ref=frame.ref)
    )


async def push(ctx: GatewayContext, conn: Device, frame: p.Push) -> None:
    """Apply a device's changes, answer with their results, tell its devices.

    Raises:
        ProtocolError: `too_large` (too many changes), `bad_change` (text that
            is not Unicode), `internal` (the database failed: nothing applied).
    """
    settings = ctx.settings
    if len(frame.changes) > settings.max_push:
        raise ProtocolError(
            f"A push may carry at most {settings.max_push} changes.", code=p.TOO_LARGE
        )
    try:
        json.dumps(frame.changes, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise ProtocolError(
            "The push holds text that is not valid Unicode (a lone surrogate), "
            "so none of it was applied.",
            code=p.BAD_CHANGE,
        ) from None
    results = _too_big_to_pull(settings.max_frame_bytes, frame.changes)
    kept = [i for i, result in enumerate(results) if result is None]
    try:
        stored = await conn.store.push(
            [frame.changes[i] for i in kept], max_skew_s=settings.max_clock_skew_s
        )
    except StoreError as exc:
        log.warning("a push failed in the database", extra={"error": str(exc)})
        raise ProtocolError(
            "The server's database failed, so nothing of this push was applied; "
            "push it again later.",
            code=p.INTERNAL,
        ) from None
    for index, result in zip(kept, stored, strict=True):
        results[index] = result
    applied = [
        (r["entity"], r["id"])
        for r in results
        if r is not None and r.get("status") == p.APPLIED
    ]
    changes, cursor = await conn.store.changes_of(
        applied, max_bytes=changed_budget(settings.max_frame_bytes)
    )
    await conn.emit(p.Pushed(results=results, cursor=cursor, ref=frame.ref))
    if applied:
        event = {"kind": "changed", "cursor": cursor, "changes": changes}
        await publish(ctx.queue, conn.user_id, event)


def _too_big_to_pull(max_frame: int, changes: list[Any]) -> list[dict[str, Any] | None]:
    """A `rejected` result for each change whose pull would not fit in a frame.

    A device that accepts frames of `max_frame_bytes` must always be able to
    sync, so no row may be stored that one `changes` frame cannot carry.
    """
    budget = max_frame - page_overhead(WORST_REF)
    results: list[dict[str, Any] | None] = []
    for change in changes:
        size = pulled_bytes(change)
        if size is None or size <= budget:
            results.append(None)
            continue
        results.append(
            {
                "id": _str(change, "id"),
                "entity": _str(change, "entity"),
                "status": p.REJECTED,
                "error": f"too large: this change would take {size} bytes in a "
                f"pull, more than fits in one frame ({budget} of the server's "
                f"max_frame_bytes {max_frame})",
            }
        )
    return results


def _str(change: Any, key: str) -> str:
    value = change.get(key) if isinstance(change, dict) else None
    return value if isinstance(value, str) else ""


async def publish(queue: JobAdmission, user_id: str, event: dict[str, Any]) -> None:
    """Send `event` to every device of `user_id`, on every gateway.

    Best effort, tried twice: after a Redis restart the first command on a
    pooled connection fails, and a duplicate event is harmless (devices
    apply changes by id and follow a job once). A device that still misses
    one catches up with `pull`.
    """
    for attempt in (1, 2):
        try:
            await queue.announce(user_id, event)
            return
        except (RedisError, OSError) as exc:
            if attempt == 2:
                log.warning("could not publish a live event", extra={"error": str(exc)})
