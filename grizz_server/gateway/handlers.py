"""The frame handlers: what the gateway does for each frame a device sends.

A handler gets the gateway's `GatewayContext` (settings, queue, metrics)
and the `Device` the frame came in on, explicitly. Every handler
acts only on that device's own user: the store it uses is the connection's
`for_user` view, job ids are derived from the user id, and a job named by a
device is served only after checking its owner. Refusals raise
`ProtocolError` with the code the device sees. `pull` and `push` are in
`sync.py`.

Must not import: the gateway's server or connection (they build on this),
the core's session or provider, textual.
"""

from __future__ import annotations

import uuid
from typing import Any

from grizz_core import days
from grizz_core import protocol as p
from grizz_core.domain import Message, Role, day_conversation_id
from grizz_core.errors import ConfigError, ProtocolError, StoreError, UsageError
from grizz_server.gateway import sync
from grizz_server.gateway.announce import publish
from grizz_server.gateway.context import GatewayContext
from grizz_server.gateway.device import Device
from grizz_server.gateway.entries import entry_frame
from grizz_server.gateway.streams import entry_after, is_terminal
from grizz_server.queue.jobs import JobMessage, job_id_for, reply_id_for


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
        await sync.pull(ctx, conn, frame)
    elif isinstance(frame, p.Push):
        await sync.push(ctx, conn, frame)
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
    conn.began(job.job_id)
    try:
        await _accept(conn, frame, job.job_id, message, False)
    finally:
        conn.release(job.job_id)  # its chunks, after `accepted`
    event = await _job_event(conn, job.job_id, message, new_day)
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
    conn.began(frame.job_id)
