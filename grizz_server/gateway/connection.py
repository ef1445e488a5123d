"""One device's WebSocket connection: authenticate, then serve its frames.

A connection runs two tasks: the reader (`serve`) and a writer draining a
bounded outbox. The jobs it watches are read by the gateway's shared
`JobStreams` reader (gateway/streams.py). Live frames (hub events, reply
chunks) never wait on a slow device: they go into the outbox without
waiting, and a device that falls 1024 frames behind is closed with 1013 and
resumes from its cursors when it reconnects. Catching up on a resumed reply
does wait for the outbox, so a slow device only slows itself. The gateway
closes a connection (4401) once its token is revoked (gateway/revocation.py).
Frames are answered by the handlers (gateway/handlers.py), given the
gateway's `GatewayContext` and this connection.

Must not import: the gateway's server (it builds on this), the core's session
or provider, textual.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from redis.exceptions import RedisError
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from grizz_core import protocol as p
from grizz_core.errors import GrizzError, ProtocolError
from grizz_server.gateway import handlers, revocation
from grizz_server.gateway.announce import JobRows, rows_since
from grizz_server.gateway.context import GatewayContext
from grizz_server.gateway.entries import entry_frame
from grizz_server.gateway.streams import Follower
from grizz_server.logs import one_line
from grizz_server.store import Principal, UserStore

log = logging.getLogger(__name__)
OUTBOX_SIZE = 1024
CLOSE_UNAUTHORIZED = 4401
CLOSE_BAD_HELLO = 4400
CLOSE_TOO_SLOW = 1013
SENT_MEMORY = 64
"""How many of its own jobs a connection remembers (their hub events are skipped)."""


WELCOME_LIMITS = (
    "max_frame_bytes",
    "max_message_chars",
    "rate_per_minute",
    "rate_burst",
    "max_active_per_user",
    "max_pull",
    "max_push",
    "idle_timeout_s",
)
"""The settings a device is told in `welcome.limits`, under their own names."""


class Connection:
    """An authenticated device; `user_id` scopes everything it can touch."""

    def __init__(
        self, ctx: GatewayContext, ws: ServerConnection, principal: Principal
    ) -> None:
        self.ctx = ctx
        self.ws = ws
        self.principal = principal
        self.user_id = principal.user_id
        self.store: UserStore = ctx.store.for_user(principal.user_id)
        self.outbox: asyncio.Queue[str | None] = asyncio.Queue(OUTBOX_SIZE)
        self.following: dict[str, Follower] = {}
        self.held: dict[str, list[p.Frame]] = {}
        """Frames of a job being sent, kept back until its `accepted` is out."""
        self.sent: dict[str, None] = {}
        """The jobs of this device's latest messages (ordered, bounded)."""
        self.cursor_seen = 0
        """The latest user cursor this device was told (welcome, changed, …)."""
        self.job_rows = JobRows()
        """Where followed jobs began, to announce the rows they write."""
        self._tasks: set[asyncio.Task[None]] = set()

    # -- outbound -------------------------------------------------------------

    async def emit(self, frame: p.Frame) -> None:
        """Queue a frame, waiting while the outbox is full (backpressure)."""
        self._count(frame)
        await self.outbox.put(p.dump_frame(frame))

    def _count(self, frame: p.Frame) -> None:
        cursor = getattr(frame, "cursor", None)
        if isinstance(cursor, int) and cursor > self.cursor_seen:
            self.cursor_seen = cursor
        if isinstance(frame, p.Error):
            self.ctx.metrics.inc("grizz_refusals_total", code=frame.code)

    def emit_nowait(self, frame: p.Frame) -> None:
        """Queue a frame without waiting; a device this far behind is dropped."""
        self._count(frame)
        self._put_nowait(p.dump_frame(frame))

    def _put_nowait(self, text: str) -> None:
        try:
            self.outbox.put_nowait(text)
        except asyncio.QueueFull:
            log.warning("device too slow; closing", extra={"user": self.user_id})
            self.ctx.metrics.inc("grizz_slow_closes_total")
            asyncio.get_running_loop().create_task(
                self.ws.close(CLOSE_TOO_SLOW, "too far behind; reconnect and resume")
            )

    async def _writer(self) -> None:
        while (text := await self.outbox.get()) is not None:
            await self.ws.send(text)
            self.ctx.metrics.inc("grizz_frames_sent_total")

    # -- inbound --------------------------------------------------------------

    async def serve(self) -> None:
        """Welcome the device, then read frames until it goes away or idles out."""
        writer = asyncio.create_task(self._writer())
        # registered for the user's job output before it can follow any job
        await self.ctx.streams.add_user(self.user_id)
        await self.ctx.hub.add(self)
        try:
            await self.emit(await self._welcome())
            while True:
                try:
                    async with asyncio.timeout(self.ctx.settings.idle_timeout_s):
                        raw = await self.ws.recv()
                except TimeoutError:
                    await self.ws.close(1000, "idle timeout")
                    return
                await self.handle(raw)
        except ConnectionClosed:
            pass
        finally:
            await self.ctx.hub.remove(self)
            for job_id in list(self.following):
                self.unfollow(job_id)
            await self.ctx.streams.remove_user(self.user_id)
            for task in [*self._tasks, writer]:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await writer

    async def close_revoked(self) -> None:
        """Close with 4401 "token revoked" (the store said so)."""
        log.info(
            "closing a connection: its token was revoked",
            extra={"user": self.user_id, "token_id": self.principal.token_id},
        )
        await self.ws.close(CLOSE_UNAUTHORIZED, revocation.CLOSE_REASON)

    async def _welcome(self) -> p.Welcome:
        s = self.ctx.settings
        return p.Welcome(
            user=self.principal.user_name,
            device=self.principal.device,
            cursor=await self.store.current_seq(),
            active_jobs=await self._active_jobs(),
            limits={name: getattr(s, name) for name in WELCOME_LIMITS},
        )

    async def _active_jobs(self) -> list[str]:
        try:
            return await self.ctx.queue.active_jobs(self.user_id)
        except (RedisError, OSError):  # e.g. a pooled connection Redis dropped
            log.warning("could not list active jobs", extra={"user": self.user_id})
            return []

    async def handle(self, raw: str | bytes) -> None:
        """Answer one incoming frame; every failure becomes an `error` frame."""
        metrics = self.ctx.metrics
        try:
            frame = p.parse_frame(raw, allowed=p.CLIENT_FRAMES)
        except ProtocolError as exc:
            metrics.inc("grizz_bad_frames_total")
            await self.emit(p.error_frame(exc, ref=p.ref_of(raw)))
            return
        metrics.inc("grizz_frames_received_total", type=frame.TYPE)
        ref = getattr(frame, "ref", "")
        try:
            await handlers.dispatch(self.ctx, self, frame)
        except ProtocolError as exc:
            await self.emit(
                p.Error(
                    code=exc.code,
                    message=exc.message,
                    ref=ref,
                    job_id=getattr(exc, "job_id", ""),
                    retry_after=getattr(exc, "retry_after", 0.0),
                )
            )
        except (RedisError, OSError) as exc:
            log.warning(
                "redis unavailable while serving a frame",
                extra={"type": frame.TYPE, "error": one_line(exc)},
            )
            await self.emit(
                p.Error(
                    code=p.UNAVAILABLE,
                    ref=ref,
                    retry_after=1.0,
                    message="The server's queue is unavailable; try again shortly.",
                )
            )
        except Exception:
            log.exception(
                "error serving a frame",
                extra={"type": frame.TYPE, "user": self.user_id},
            )
            await self.emit(
                p.Error(
                    code=p.INTERNAL,
                    ref=ref,
                    message="The server hit an unexpected error; it has been logged.",
                )
            )

    # -- jobs -----------------------------------------------------------------

    def follow(
        self, job_id: str, after: str = "0", *, fresh: bool = False, hold: bool = False
    ) -> None:
        """Stream job `job_id`'s output to this device from after entry `after`.

        `fresh`: the job is being queued now (see `JobStreams.follow`).
        `hold`: keep its frames back until `release` (the device must hear
        `accepted` before any chunk: a worker can start before the message's
        write, and so `accepted`, is done)."""
        if job_id in self.following:
            return
        streams = self.ctx.streams
        if hold:
            self.held[job_id] = []

        async def deliver(entry: str, fields: dict[bytes, bytes], live: bool) -> None:
            frame = entry_frame(job_id, entry, fields)
            if fields.get(b"k") in (b"done", b"error"):
                self.following.pop(job_id, None)
            since = self.job_rows.ended(job_id, fields)
            if since is not None:
                self._spawn(self._announce_rows(since))
            if frame is None:
                return
            held = self.held.get(job_id)
            if held is not None:
                held.append(frame)
            elif live:
                self.emit_nowait(frame)
            else:
                await self.emit(frame)
            self.ctx.metrics.inc("grizz_job_frames_sent_total")

        async def gone() -> None:
            self.following.pop(job_id, None)
            error = p.Error(
                code=p.NOT_FOUND,
                job_id=job_id,
                message="This reply is no longer available; pull to get the stored "
                "messages.",
            )
            held = self.held.get(job_id)
            if held is not None:
                held.append(error)
            else:
                self.emit_nowait(error)

        self.following[job_id] = streams.follow(
            job_id, after, deliver, gone, fresh=fresh
        )

    def release(self, job_id: str) -> None:
        """Send the frames held back for `job_id` (its `accepted` is out), and
        stop holding them; the hub's `job` event for it is not for this device."""
        self.sent[job_id] = None
        if len(self.sent) > SENT_MEMORY:
            del self.sent[next(iter(self.sent))]
        for frame in self.held.pop(job_id, ()):
            self.emit_nowait(frame)

    def is_following(self, job_id: str) -> bool:
        return job_id in self.following

    def began(self, job_id: str, cursor: int | None = None) -> None:
        self.job_rows.began(job_id, self.cursor_seen if cursor is None else cursor)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _announce_rows(self, after: int) -> None:
        """Send the rows changed after `after` (a job wrote some; announce.py)."""
        s = self.ctx.settings
        try:
            frame = await rows_since(
                self.store, after, max_frame=s.max_frame_bytes, limit=s.max_pull
            )
        except GrizzError as exc:  # the device still sees them when it pulls
            log.warning("could not read a reply's rows", extra={"error": str(exc)})
            return
        self.emit_nowait(frame)

    def unfollow(self, job_id: str) -> None:
        self.held.pop(job_id, None)
        follower = self.following.pop(job_id, None)
        if follower is not None:
            self.ctx.streams.unfollow(job_id, follower)

    async def on_event(self, event: dict[str, Any]) -> None:
        """A live event for this user from the hub."""
        kind = event.get("kind")
        if kind == "job":
            job_id = str(event.get("job_id"))
            own = job_id in self.sent
            self.sent.pop(job_id, None)  # once: a later event (a retry) is news
            if job_id in self.following or own:
                # the sending device: `accepted` already gave it the message,
                # and it follows the reply (or has it whole already: a fast
                # reply can end before this event comes); its cursor catches
                # up with the reply's `changed` (one frame less per message)
                return
            if "cursor" in event:
                self.job_rows.began(job_id, int(event["cursor"]))
            self.emit_nowait(
                p.Job(
                    job_id=event["job_id"],
                    message_id=event["message_id"],
                    reply_id=event["reply_id"],
                    conversation_id=event["conversation_id"],
                )
            )
            self.follow(str(event["job_id"]))
        if kind in ("job", "changed"):
            self._changed(int(event.get("cursor", 0)), list(event.get("changes", [])))

    def _changed(self, cursor: int, changes: list[Any]) -> None:
        """Send `changed`; with no rows if they would not fit in one frame."""
        self.cursor_seen = max(self.cursor_seen, cursor)
        text = p.dump_frame(p.Changed(cursor=cursor, changes=changes))
        if changes and len(text.encode()) > self.ctx.settings.max_frame_bytes:
            text = p.dump_frame(p.Changed(cursor=cursor, changes=[]))
        self._put_nowait(text)
