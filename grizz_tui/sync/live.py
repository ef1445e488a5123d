"""The app's live link to the server: one `SyncClient`, kept up, and what it says.

`LiveSync` keeps the connection up (reconnecting with `backoff_delays`),
catches up after each `welcome` (push the outbox, send pending messages, pull,
resume the replies it follows), applies `changed` frames, follows reply jobs
(its own sends and other devices', `ReplyTracker`) and pushes what this
device writes while connected. It reports to a `LiveListener`: the
connection state, rows applied, reply updates, messages delivered.

Everything that touches its database or asks the server something runs in
one task, in order (`_consume`): frames, catch-up and the app's sends are
items of one queue. So a job's frames are never handled before its
`accepted` is, and the database connection (its own, not the UI's) is never
used from two places at once.

Must not import: textual.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Protocol

from grizz_core import protocol as p
from grizz_core.domain import Message
from grizz_tui.store import sync as store
from grizz_tui.store.db import Database
from grizz_tui.sync.client import (
    ServerRefused,
    ServerUnreachable,
    SyncClient,
    TokenRefused,
    backoff_delays,
)
from grizz_tui.sync.engine import SyncEngine
from grizz_tui.sync.reply import JobRef, ReplyTracker, ReplyUpdate
from grizz_tui.sync.state import load_state, record_sync

log = logging.getLogger(__name__)

PUSH_EVERY = 2.0
"""Seconds between pushes of what this device wrote while connected."""
OPEN_TIMEOUT = 5.0
REPLY_FRAMES = (p.Chunk, p.Restart, p.Retrying, p.Tool, p.Done)


@dataclass(frozen=True)
class LinkState:
    """The connection as the status bar tells it."""

    connected: bool = False
    retry_at: float = 0.0
    """When the next connection attempt starts (monotonic), 0 when none waits."""
    pending: int = 0
    """Messages stored here that the server has not accepted yet."""
    refused: str = ""
    """Why the server refused the token ('' when it did not)."""

    def describe(self, now: float | None = None) -> str:
        """`connected`, `offline, 2 pending · reconnecting in 4 s`, …"""
        if self.refused:
            return "server refused the token: grizz login"
        if self.connected:
            return "connected"
        parts = [f"offline, {self.pending} pending"] if self.pending else []
        if self.retry_at:
            left = max(0, math.ceil(self.retry_at - (now or time.monotonic())))
            parts.append(f"reconnecting in {left} s")
        return " · ".join(parts) or "connecting…"


@dataclass(frozen=True)
class Submitted:
    """What became of a message the app sent."""

    message: Message
    """The stored user message."""
    job: JobRef | None = None
    """The server's reply job; None when the server did not take it."""
    direct: bool = False
    """Not sent: the device answers it itself (the outbox pushes both later)."""
    why: str = ""
    """Why it was not sent ('' when it was)."""


class LiveListener(Protocol):
    """Who hears what the link does (the app's `SyncLink`)."""

    def state_changed(self, state: LinkState) -> None: ...

    def rows_applied(self, changes: list[dict[str, Any]]) -> None: ...

    def reply_updated(self, job: JobRef, update: ReplyUpdate, *, own: bool) -> None:
        """A reply frame of a job this device follows; `own`: the app sent it."""
        ...

    def delivered(self, message: Message) -> None:
        """A message that waited here was accepted by the server."""
        ...


@dataclass
class _Call:
    work: Callable[[], Awaitable[Any]]
    future: asyncio.Future[Any]


class LiveSync:
    """The app's connection to the server; see the module docstring."""

    def __init__(
        self,
        client: SyncClient,
        db: Database,
        listener: LiveListener,
        *,
        delays: Callable[[], Iterator[float]] = backoff_delays,
    ) -> None:
        self.client = client
        self.db = db
        self.listener = listener
        self.delays = delays
        self.state = LinkState()
        self.trackers: dict[str, ReplyTracker] = {}
        self.own: set[str] = set()
        """Jobs of messages the app sent in this run."""
        self._unseen: set[str] = set()
        """Jobs of other devices whose message may not be here yet."""
        self._inbox: asyncio.Queue[p.Frame | _Call | None] = asyncio.Queue()
        self._wake = asyncio.Event()
        client.add_listener(self._inbox.put_nowait)

    # -- what the app asks -----------------------------------------------------
    async def submit(self, text: str, *, day: str, tz: str, direct: bool) -> Submitted:
        """Store `text` for `day`; send it when connected.

        Not connected: with `direct` the device answers it itself (it is not
        left pending, so it is never sent); otherwise it stays pending and is
        sent by the next catch-up, exactly once.
        """
        submitted: Submitted = await self._call(
            lambda: self._submit(text, day, tz, direct)
        )
        return submitted

    def reconnect_now(self) -> None:
        """Cut the wait before the next connection attempt short."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected until `stop` is set or the token is refused."""
        consumer = asyncio.create_task(self._consume())
        pusher = asyncio.create_task(self._push_now_and_then())
        try:
            await self._connect_loop(stop)
        finally:
            for task in (consumer, pusher):
                task.cancel()
            for task in (consumer, pusher):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self.client.close()

    # -- the connection --------------------------------------------------------
    async def _connect_loop(self, stop: asyncio.Event) -> None:
        delays = self.delays()
        while not stop.is_set():
            try:
                welcome = await self.client.open(timeout=OPEN_TIMEOUT)
            except TokenRefused as exc:
                self._report(refused=exc.message, connected=False, retry_at=0.0)
                return
            except ServerUnreachable as exc:
                log.info("sync: %s", exc)
                await self._wait(next(delays), stop)
                continue
            delays = self.delays()
            self._report(connected=True, retry_at=0.0)
            self._inbox.put_nowait(_Call(partial(self._catch_up, welcome), _void()))
            await _first(self.client.closed.wait(), stop.wait())
            await self.client.close()
            self._report(connected=False)

    async def _wait(self, delay: float, stop: asyncio.Event) -> None:
        self._wake.clear()
        self._report(retry_at=time.monotonic() + delay)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await _first(stop.wait(), self._wake.wait())
        self._report(retry_at=0.0)

    def _report(self, **changes: Any) -> None:
        self.state = replace(self.state, **changes)
        self.listener.state_changed(self.state)

    # -- the one task that works ------------------------------------------------
    async def _call(self, work: Callable[[], Awaitable[Any]]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inbox.put_nowait(_Call(work, future))
        return await future

    async def _consume(self) -> None:
        while True:
            item = await self._inbox.get()
            try:
                if isinstance(item, _Call):
                    await _settle(item)
                elif item is not None:
                    await self._on_frame(item)
            except (ServerUnreachable, ServerRefused) as exc:
                log.info("sync: %s", exc)

    async def _submit(self, text: str, day: str, tz: str, direct: bool) -> Submitted:
        message = store.store_outgoing(self.db, day=day, tz=tz, text=text)
        why = "the server is unreachable"
        if self.state.connected:
            try:
                accepted = await self.client.request(
                    p.Send(
                        text=text,
                        message_id=message.id,
                        day=day,
                        tz=tz if "/" in tz else "",
                    ),
                    p.Accepted,
                )
            except ServerUnreachable as exc:
                why = str(exc)
            except ServerRefused as exc:
                self._count_pending()
                return Submitted(message, why=exc.frame.message)
            else:
                store.settle_sent(self.db, accepted.message)
                self.own.add(accepted.job_id)
                self._track(accepted)
                return Submitted(message, JobRef.of(accepted))
        if direct:
            store.clear_pending(self.db, message.id)
        else:
            self._wake.set()
        self._count_pending()
        return Submitted(message, direct=direct, why=why)

    def _count_pending(self) -> None:
        self._report(pending=len(store.pending_sends(self.db)))

    async def _catch_up(self, welcome: p.Welcome) -> None:
        """After `welcome`: push, send what waited, pull, follow the replies."""
        engine = SyncEngine(self.db, self.client, on_applied=self.listener.rows_applied)
        followed = set(self.trackers)  # before the sends: those stream on their own
        await engine.push()
        try:
            await engine.send_pending(wait_replies=False, on_accepted=self._delivered)
        except ServerRefused as exc:  # the rest wait for the next round
            log.info("sync: %s", exc)
        self._count_pending()
        await engine.pull()
        record_sync(self.db)
        for job_id in followed | (set(welcome.active_jobs) - set(self.trackers)):
            tracker = self.trackers.get(job_id)
            after = tracker.last_entry if tracker is not None else "0"
            await self.client.send(p.Resume(job_id=job_id, after=after))

    def _delivered(self, accepted: p.Accepted) -> None:
        self._track(accepted)
        data = {**accepted.message, "metadata": _json(accepted.message)}
        self.listener.delivered(Message.from_row(data))

    def _track(self, frame: p.Accepted | p.Job) -> ReplyTracker:
        tracker = ReplyTracker(self.db, JobRef.of(frame))
        self.trackers[frame.job_id] = tracker
        return tracker

    async def _push(self) -> None:
        if self.state.connected:
            await SyncEngine(self.db, self.client).push()

    async def _push_now_and_then(self) -> None:
        while True:
            await asyncio.sleep(PUSH_EVERY)
            if self.state.connected:
                self._inbox.put_nowait(_Call(self._push, _void()))

    # -- frames ----------------------------------------------------------------
    async def _on_frame(self, frame: p.Frame) -> None:
        if isinstance(frame, p.Changed):
            await self._changed(frame)
        elif isinstance(frame, p.Job):
            await self._job(frame)
        elif isinstance(frame, REPLY_FRAMES) or (
            isinstance(frame, p.Error) and frame.job_id
        ):
            await self._reply_frame(frame)

    async def _changed(self, frame: p.Changed) -> None:
        if frame.changes:
            try:
                store.apply_rows(self.db, frame.changes)
            except sqlite3.IntegrityError:  # its conversation is not here yet
                await self._pull()
                return
            self.listener.rows_applied(frame.changes)
        if frame.cursor > load_state(self.db).cursor:
            await self._pull()

    async def _pull(self) -> None:
        engine = SyncEngine(self.db, self.client, on_applied=self.listener.rows_applied)
        await engine.pull()

    async def _job(self, frame: p.Job) -> None:
        """Another device's message: follow its reply (see `_ensure_message`)."""
        tracker = self.trackers.get(frame.job_id)
        if tracker is not None:  # seen before: it starts over
            update = ReplyUpdate("restart", dropped=tracker.restart(1))
            own = frame.job_id in self.own
            self.listener.reply_updated(tracker.job, update, own=own)
            return
        self._track(frame)
        self._unseen.add(frame.job_id)

    async def _ensure_message(self, job: JobRef) -> None:
        """Before another device's reply is shown, its message must be here.

        The `changed` frame that carries it comes with the `job` frame; a pull
        fetches it when it did not (a reconnect in between).
        """
        self._unseen.discard(job.job_id)
        found = self.db.query("SELECT 1 FROM messages WHERE id = ?", [job.message_id])
        if not list(found):
            await self._pull()

    async def _reply_frame(self, frame: p.Frame) -> None:
        job_id = getattr(frame, "job_id", "")
        tracker = self.trackers.get(job_id)
        if tracker is None:  # a reply nobody follows here: keep its outcome
            if isinstance(frame, p.Done):
                change = {"entity": "messages", "id": frame.message["id"]}
                changes = [change | {"data": frame.message}]
                store.apply_rows(self.db, changes)
                self.listener.rows_applied(changes)
            return
        if job_id in self._unseen:
            await self._ensure_message(tracker.job)
        if isinstance(frame, p.Error) and frame.code == p.NOT_FOUND:
            self._gone(tracker)
            return
        update = tracker.apply(frame)
        if update is None:
            return
        if update.kind in ("done", "error"):
            del self.trackers[job_id]
        self.listener.reply_updated(tracker.job, update, own=job_id in self.own)

    def _gone(self, tracker: ReplyTracker) -> None:
        """The server no longer has the job: the pulled row is the outcome."""
        job = tracker.job
        del self.trackers[job.job_id]
        sql = "SELECT * FROM messages WHERE id = ?"
        rows = list(self.db.query(sql, [job.reply_id]))
        if rows and rows[0]["status"] != "streaming":
            final = Message.from_row(rows[0]).to_dict()
            update = ReplyUpdate("done", message=final)
        else:
            update = ReplyUpdate("error", "the reply is no longer available")
        self.listener.reply_updated(job, update, own=job.job_id in self.own)


def _json(message: dict[str, Any]) -> str:
    import json

    return json.dumps(message.get("metadata") or {})


def _void() -> asyncio.Future[Any]:
    """A future nobody awaits (for work the link queues for itself)."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    future.add_done_callback(lambda f: f.cancelled() or f.exception())
    return future


async def _settle(call: _Call) -> None:
    try:
        result = await call.work()
    except (ServerUnreachable, ServerRefused) as exc:
        if not call.future.done():
            call.future.set_exception(exc)
        raise
    except Exception as exc:
        log.exception("sync: unexpected error")
        if not call.future.done():
            call.future.set_exception(exc)
        return
    if not call.future.done():
        call.future.set_result(result)


async def _first(*waits: Awaitable[Any]) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
