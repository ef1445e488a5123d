"""`SyncLink`: the app's one connection to grizz-server, shown in the chat.

When the device is logged in (`server.url` set, a token stored) the link
owns the app's `LiveSync` (one `SyncClient` per app process), started after
the day is on screen so the first frame never waits for the network. What
the link hears becomes Textual messages it handles itself, in order:

- a message sent from the composer goes through the server; its reply
  streams into the conversation (`restart` drops the partial text, `done`
  shows the stored reply); offline it is answered directly when a provider
  is usable and `sync.fallback` allows it (`AnswerDirectly`, up to the
  screen), or kept and marked "pending" until the server is back;
- another device's exchange streams in live on the day it belongs to, with
  a small notice that it came from elsewhere; rows changed elsewhere
  (deletions, new messages) are applied to what is on screen;
- the connection state goes up as `StateChanged` for the status bar.

It draws nothing (`display: none`).

Must not import: websockets, the store or the sync package at module level
(the first frame needs none of them); the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.css.query import NoMatches
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static

from grizz_core.errors import GrizzError
from grizz_tui.tui.messages import ReplyEnded
from grizz_tui.tui.widgets.reply_stream import ReplyStream

if TYPE_CHECKING:
    from grizz_core.domain import Message as StoredMessage
    from grizz_tui.sync.live import LinkState, LiveSync, Submitted
    from grizz_tui.sync.reply import JobRef, ReplyUpdate
    from grizz_tui.tui.backend import Backend
    from grizz_tui.tui.widgets.conversation import Conversation
    from grizz_tui.tui.widgets.message_view import MessageView

PENDING_MARK = "pending — will be sent when the server is back"


class SyncLink(Widget):
    """The app's live link to the server; see the module docstring."""

    DEFAULT_CSS = """
    SyncLink {
        display: none;
    }
    """

    class StateChanged(Message):
        """The connection changed: `text` is what the status bar says;
        `connected`: replies come from the server (else from this device)."""

        def __init__(self, text: str, *, connected: bool) -> None:
            super().__init__()
            self.text = text
            self.connected = connected

    class AnswerDirectly(Message):
        """The server is away: the device answers this stored message itself."""

        def __init__(self, message: StoredMessage) -> None:
            super().__init__()
            self.message = message

    class _Submitted(Message):
        def __init__(self, submitted: Submitted) -> None:
            super().__init__()
            self.submitted = submitted

    class _Rows(Message):
        def __init__(self, changes: list[dict[str, Any]]) -> None:
            super().__init__()
            self.changes = changes

    class _Reply(Message):
        def __init__(self, job: JobRef, update: ReplyUpdate, own: bool) -> None:
            super().__init__()
            self.job, self.update, self.own = job, update, own

    class _Delivered(Message):
        def __init__(self, message: StoredMessage) -> None:
            super().__init__()
            self.message = message

    def __init__(
        self,
        backend: Backend,
        conversation: Conversation,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.backend = backend
        self.conversation = conversation
        """Where the day on screen is shown."""
        self.live: LiveSync | None = None
        """The connection, once the device turned out to be logged in."""
        self.state: LinkState | None = None
        self.replying = False
        """A message sent from this screen waits for its reply."""
        self.day = ""
        self._stop = asyncio.Event()
        self._streams: dict[str, MessageView] = {}
        """Replies streaming in, by reply id."""
        self._sent_at = 0.0

    @property
    def active(self) -> bool:
        """Messages go through the server (the device is logged in)."""
        return self.live is not None

    def on_mount(self) -> None:
        self.set_interval(1.0, self._tick)

    def on_unmount(self) -> None:
        self._stop.set()

    # -- the connection ----------------------------------------------------------
    @work(group="sync", exit_on_error=False)
    async def connect(self) -> None:
        """Connect when logged in, and stay connected (after the first frame)."""
        settings = self.backend.settings
        if not settings.server_url:
            return
        from grizz_tui.store.db import open_database
        from grizz_tui.sync.ask import make_client, server_token
        from grizz_tui.sync.live import LiveSync

        try:
            token = await asyncio.to_thread(server_token)
            if token is None:
                return
            client = make_client(settings, token)
            db = await asyncio.to_thread(open_database, self.backend.db_path)
        except GrizzError as exc:
            self.notify(str(exc), title="Sync", severity="warning")
            return
        self.live = LiveSync(client, db, self)
        try:
            await self.live.run(self._stop)
        finally:
            db.close()

    def reconnect_now(self) -> None:
        if self.live is not None:
            self.live.reconnect_now()

    def _tick(self) -> None:
        if self.state is not None and self.state.retry_at:
            self.post_message(
                self.StateChanged(self.state.describe(), connected=self.state.connected)
            )

    # -- LiveListener (called by LiveSync on this loop) ----------------------------
    def state_changed(self, state: LinkState) -> None:
        self.state = state
        if not state.connected:
            self.replying = False  # the reply resumes on reconnect; input is free
        self.post_message(
            self.StateChanged(state.describe(), connected=state.connected)
        )

    def rows_applied(self, changes: list[dict[str, Any]]) -> None:
        self.post_message(self._Rows(changes))

    def reply_updated(self, job: JobRef, update: ReplyUpdate, *, own: bool) -> None:
        self.post_message(self._Reply(job, update, own))

    def delivered(self, message: StoredMessage) -> None:
        self.post_message(self._Delivered(message))

    # -- sending -----------------------------------------------------------------
    @work(group="sync-send", exit_on_error=False)
    async def send(self, text: str, day: str) -> None:
        """Send `text` through the server (see the module docstring)."""
        from grizz_core.days import tz_name

        live = self.live
        if live is None:
            return
        settings = self.backend.settings
        direct = settings.sync_fallback and self._provider_usable()
        self.replying, self._sent_at = True, time.monotonic()
        submitted = await live.submit(
            text, day=day, tz=tz_name(settings.timezone), direct=direct
        )
        self.post_message(self._Submitted(submitted))

    def _provider_usable(self) -> bool:
        try:
            self.backend.session()
        except GrizzError:
            return False
        return True

    @on(_Submitted)
    async def _submitted(self, event: _Submitted) -> None:
        event.stop()
        done = event.submitted
        view = await self.conversation.add(done.message)
        self.conversation.anchor()
        if done.job is not None:
            self.post_message(ReplyStream.Started())
            return
        self.replying = False
        if done.direct:
            self.post_message(self.AnswerDirectly(done.message))
        else:
            await mark_pending(view)

    def shown(self, day: str) -> None:
        """`day` is on screen: mark its messages still waiting for the server."""
        self.day = day
        self._streams.clear()
        if self.backend.is_open and self.backend.settings.server_url:
            from grizz_tui.store.sync import pending_sends

            for pending in pending_sends(self.backend.db):
                view = self.conversation.view_of(pending.message.id)
                if view is not None:
                    self.run_worker(mark_pending(view), exit_on_error=False)

    @on(_Delivered)
    async def _delivered(self, event: _Delivered) -> None:
        event.stop()
        view = self.conversation.view_of(event.message.id)
        if view is not None:
            await view.query(".pending-mark").remove()

    # -- what other devices did ----------------------------------------------------
    def _on_screen(self, conversation_id: str) -> bool:
        from grizz_core.domain import day_conversation_id

        return bool(self.day) and conversation_id == day_conversation_id(self.day)

    @on(_Rows)
    async def _rows(self, event: _Rows) -> None:
        event.stop()
        added = 0
        for change in event.changes:
            data = change.get("data") or {}
            if change.get("entity") != "messages" or not self._on_screen(
                data.get("conversation_id", "")
            ):
                continue
            added += await self._show_row(_message(data))
        if added:
            self.notify(f"{added} new from another device.", title="Synced")

    async def _show_row(self, message: StoredMessage) -> int:
        """Show a row changed elsewhere; 1 if it is a new user message."""
        view = self.conversation.view_of(message.id)
        if message.deleted:
            if view is not None:
                await view.remove()
            return 0
        if message.id in self._streams or str(message.status) == "streaming":
            return 0
        if view is None:
            await self.conversation.add(message)
            self.conversation.anchor()
            return int(str(message.role) == "user")
        if view.is_reply:
            await _finish(view, message)
        return 0

    @on(_Reply)
    async def _reply(self, event: _Reply) -> None:
        event.stop()
        job, update, own = event.job, event.update, event.own
        if self._on_screen(job.conversation_id):
            await self._show_update(job, update, own=own)
        if own and update.kind in ("done", "error"):
            self._own_ended(update)

    async def _show_update(
        self, job: JobRef, update: ReplyUpdate, *, own: bool
    ) -> None:
        view = self._streams.get(job.reply_id)
        if update.kind in ("text", "restart"):
            if view is None:
                view = await self._start_view(job, own=own)
            elif update.dropped:
                await _finish(view, _reply_message(job, "", "streaming"))
                view.start_stream()
            if update.text:
                await view.write(update.text)
        elif update.kind == "retrying":
            self.notify(f"{update.text} Trying again…", title="Grizz")
        elif update.kind == "tool":
            self.notify(update.text, title="Grizz")
        elif update.kind == "done":
            final = _message(update.message)
            self._streams.pop(job.reply_id, None)
            await self._show_final(view, final)
        elif update.kind == "error" and view is not None:
            self._streams.pop(job.reply_id, None)
            await _finish(view, _reply_message(job, view.message.content, "error"))

    async def _start_view(self, job: JobRef, *, own: bool) -> MessageView:
        view = self.conversation.view_of(job.reply_id)
        if view is None:
            view = await self.conversation.add(_reply_message(job, "", "streaming"))
        view.start_stream()
        self.conversation.anchor()
        self._streams[job.reply_id] = view
        if not own:
            self.notify("Grizz is answering a message from another device.")
        return view

    async def _show_final(self, view: MessageView | None, final: StoredMessage) -> None:
        if view is None:
            view = self.conversation.view_of(final.id)
        if view is None:
            await self.conversation.add(final)
            self.conversation.anchor()
        else:
            await _finish(view, final)

    def _own_ended(self, update: ReplyUpdate) -> None:
        self.replying = False
        self.post_message(ReplyStream.Stopped())
        if update.kind == "done":
            final = _message(update.message)
            meta = final.metadata
            elapsed = time.monotonic() - self._sent_at
            self.post_message(ReplyStream.Finished(meta.get("usage") or {}, elapsed))
            self.post_message(ReplyEnded(final))
        else:
            self.post_message(ReplyStream.Failed(update.text, retry=False))


async def _finish(view: MessageView, message: StoredMessage) -> None:
    """Show a reply's stored row; a view already taken apart (the app is
    closing while a late frame arrives) is left alone."""
    with contextlib.suppress(NoMatches):
        await view.finish(message)


async def mark_pending(view: MessageView) -> None:
    """Mark a message the server has not taken yet (removed once it has)."""
    if not view.query(".pending-mark"):
        await view.mount(Static(PENDING_MARK, classes="pending-mark"))


def _message(data: dict[str, Any]) -> StoredMessage:
    import json

    from grizz_core.domain import Message as Stored

    return Stored.from_row({**data, "metadata": json.dumps(data.get("metadata") or {})})


def _reply_message(job: JobRef, content: str, status: str) -> StoredMessage:
    from grizz_core.domain import utc_now

    stamp = utc_now()
    return _message(
        {
            "id": job.reply_id,
            "conversation_id": job.conversation_id,
            "role": "assistant",
            "content": content,
            "status": status,
            "created_at": stamp,
            "updated_at": stamp,
            "metadata": {"reply_to": job.message_id},
        }
    )
