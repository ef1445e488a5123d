"""The chat screen: one day's conversation, the composer, the status bar.

The first frame shows only the composer and an empty list; the store is
opened right after it, and the provider on first send (see `tui.backend`).
Replies stream in the `ReplyStream` it owns, which posts up what happened
(`Started`, `Stopped`, `Failed`, …); Esc cancels a reply and the session
stores the partial text as `interrupted`. Messages on screen ask for their
actions (copy, delete, edit) with messages (`tui.messages`), handled here;
the app's services (setup, memory, help) come through `ChatHost`.

Must not import: httpx, the store or the core at module level; the app.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.binding import BindingType
from textual.containers import Vertical
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from grizz_core.errors import GrizzError
from grizz_tui.tui import heap
from grizz_tui.tui.keys import rebindable
from grizz_tui.tui.messages import (
    CopyCodeRequested,
    CopyRequested,
    DayShown,
    DeleteRequested,
    EditRequested,
    ModelLoading,
)
from grizz_tui.tui.screens import chat_dialogs, chat_edit
from grizz_tui.tui.screens.chat_dialogs import DayChosen, DeleteConfirmed, ImageAttached
from grizz_tui.tui.sync_link import SyncLink
from grizz_tui.tui.widgets.composer import ComposeHint, Composer
from grizz_tui.tui.widgets.conversation import Conversation
from grizz_tui.tui.widgets.day_bar import DayBar
from grizz_tui.tui.widgets.notices import ErrorNotice, Notices
from grizz_tui.tui.widgets.reply_stream import ReplyJob, ReplyStream
from grizz_tui.tui.widgets.status_bar import StatusBar
from grizz_tui.tui.widgets.typing_indicator import TypingIndicator

if TYPE_CHECKING:
    from textual.app import ComposeResult

    from grizz_core.domain import Attachment, Message
    from grizz_tui.tui.host import ChatHost
    from grizz_tui.tui.widgets.message_view import MessageView


WARM_UP_DELAY = 0.2
"""Seconds after the day is painted before the core is imported."""


class ChatScreen(Screen[None]):
    """Today's (or a chosen day's) conversation with Grizz."""

    BINDINGS: ClassVar[list[BindingType]] = [
        rebindable("cancel", "Stop", tooltip="Stop Grizz's reply."),
        rebindable("regenerate", "Regenerate"),
        rebindable("edit_last", "Edit last"),
        rebindable("days", "Days"),
        rebindable("search", "Search"),
        rebindable("memory", "Memory"),
        rebindable("attach", "Attach image"),
        rebindable("help", "Help"),
        rebindable("settings", "Settings"),
        rebindable("undo_memory", "Undo memory", show=False),
    ]

    def __init__(self, host: ChatHost, *, day: str | None = None) -> None:
        super().__init__(id="chat")
        self.host = host
        self.backend = host.backend
        self.requested_day = day
        self.day = ""
        """The day on screen (YYYY-MM-DD); '' until the store is open."""
        self.today = ""
        self.editing: Message | None = None
        """Your last message, while it is being edited in the composer."""
        self.unusable = ""
        """Why the store could not be opened ('' when it is fine)."""
        self.pending: list[Attachment] = []
        """Images to send with the next message."""

    def compose(self) -> ComposeResult:
        conversation = Conversation(id="conversation")
        yield DayBar("", id="day-bar")
        yield conversation
        with Vertical(id="bottom"):
            yield Notices(self.backend, id="notices")
            yield TypingIndicator(animate=self.host.motion, id="typing")
            yield ComposeHint(id="compose-hint")
            yield Composer(
                id="composer",
                newline_key=self.backend.settings.tui_newline_key,
                placeholder="Write to Grizz… (Enter sends)",
                blink=self.host.motion,
            )
            yield StatusBar(id="status")
        yield ReplyStream(self.backend, conversation, id="replies")
        yield SyncLink(self.backend, conversation, id="sync-link")

    def on_mount(self) -> None:
        self.composer.focus()
        self.typing.display = False
        self.status.provider = self.backend.provider_label()
        newline = self.backend.settings.tui_newline_key
        self.status.hints = (
            f"Enter send · {newline} newline · ctrl+p commands · F1 help"
        )
        self.query_one(DayBar).update("🐻 Grizz")
        self.call_after_refresh(self.start_up)

    def on_unmount(self) -> None:
        heap.release()

    def on_screen_resume(self) -> None:
        """Back from a dialog or another screen: the composer has the keys.

        (Left on a message, the next sentence typed would fire its one-letter
        actions: `d` delete, `e` edit, `c` copy.) Stale memory notices go.
        """
        self.composer.focus()
        if self.backend.is_open:
            self.call_later(self.notices.drop_stale)

    @property
    def composer(self) -> Composer:
        return self.query_one(Composer)

    @property
    def conversation(self) -> Conversation:
        return self.query_one(Conversation)

    @property
    def status(self) -> StatusBar:
        return self.query_one(StatusBar)

    @property
    def typing(self) -> TypingIndicator:
        return self.query_one(TypingIndicator)

    @property
    def notices(self) -> Notices:
        return self.query_one(Notices)

    @property
    def replies(self) -> ReplyStream:
        return self.query_one(ReplyStream)

    @property
    def link(self) -> SyncLink:
        return self.query_one(SyncLink)

    @property
    def reply_worker(self) -> Worker[None] | None:
        """The last reply's worker (None before the first send)."""
        return self.replies.worker

    @property
    def replying(self) -> bool:
        return self.replies.running or self.link.replying

    # -- start-up ------------------------------------------------------------
    @work(group="startup", exit_on_error=False)
    async def start_up(self) -> None:
        """After the first paint: open the store, show the day, then warm up."""
        self.host.first_frame_shown()
        backend = self.backend
        from grizz_core.days import today

        try:
            self.today = today(backend.settings.timezone)
            # In a thread: imports, migrations on a first run or after an
            # upgrade, and orphan recovery must not hold up the first frames.
            await asyncio.to_thread(backend.open_store)
        except GrizzError as exc:
            self.unusable = str(exc)
            await self.show_error(self.unusable, retry=False)
            return
        if count := backend.recovered:
            self.notify(
                f"{count} reply cut off last time was kept and marked interrupted.",
                title="Recovered",
            )
        await self.load_day(self.requested_day or self.today)
        self.link.connect()  # in the background: never before the first frame
        # The core (httpx) is imported only once the day is painted: a thread
        # import holds the GIL and would delay that paint by its whole cost.
        self.call_after_refresh(self.warm_up)

    @work(group="startup", exit_on_error=False)
    async def warm_up(self) -> None:
        """Import the core ahead of the first send; then open setup, start
        loading the local model, or build the provider."""
        backend = self.backend
        await asyncio.sleep(WARM_UP_DELAY)
        await asyncio.to_thread(backend.import_core)
        if backend.needs_setup():
            self.host.open_setup(first_run=True)
        elif backend.uses_local_model():
            self.status.provider = backend.provider_label()  # the fallback, too
            self.replies.preload_model()
        else:
            await asyncio.to_thread(backend.prepare_provider)

    async def load_day(self, day: str, *, focus_id: str | None = None) -> None:
        """Show `day`'s conversation (only that day is read)."""
        messages, files = self.backend.read_day(day)
        self.day = day
        self.query_one(DayBar).show(day, self.today)
        heap.release()  # the page being replaced can be collected
        await self.conversation.show(messages, files=files, focus_id=focus_id)
        self.link.shown(day)
        self.composer.focus()
        self.call_after_refresh(heap.settle)
        last_reply = next(
            (m for m in reversed(messages) if str(m.role) == "assistant"), None
        )
        if last_reply is not None:
            self.status.show_usage(last_reply.metadata.get("usage") or {})
        self.post_message(DayShown(day, len(messages)))

    def show_today(self) -> None:
        """Go back to today's conversation (from the palette)."""
        if self.today:
            self.post_message(DayChosen(self.today))

    def settings_reloaded(self) -> None:
        """The provider may have changed: show it, and say how to get an answer."""
        self.backend.uses_local_model()  # (the core is imported by now)
        self.status.provider = self.backend.provider_label()
        views = self.conversation.views
        if views and str(views[-1].message.role) == "user":
            self.notify("Press Ctrl+R for Grizz's answer to your last message.")

    # -- sending -------------------------------------------------------------
    @on(Composer.Submitted)
    async def submitted(self, event: Composer.Submitted) -> None:
        if self.replying:
            self.notify(
                "Grizz is still answering; Esc stops the reply.", severity="warning"
            )
            return
        if not self.backend.is_open:
            why = self.unusable or "Still opening your conversations…"
            self.notify(why, severity="error" if self.unusable else "warning")
            return
        text = event.text.strip("\n")
        self.composer.take(event.text)
        if self.day != self.today:
            await self.load_day(self.today)
        if self.editing is not None:
            await self.retract(self.editing)
            self.end_edit()
        files, self.pending = self.pending, []
        self._show_pending()
        self.start_reply(ReplyJob(text=text, attachments=files, day=self.today))

    def start_reply(self, job: ReplyJob) -> None:
        self.notices.clear_errors()
        self.composer.focus()  # not a message: the next keys are the user's text
        if self.link.active and job.user_message is None and not job.attachments:
            self.link.send(job.text, job.day)  # through the server
        else:
            self.replies.start(job)

    @on(SyncLink.AnswerDirectly)
    def _answer_directly(self, event: SyncLink.AnswerDirectly) -> None:
        self.replies.start(ReplyJob(user_message=event.message, day=self.today))

    @on(SyncLink.StateChanged)
    def _connection_changed(self, event: SyncLink.StateChanged) -> None:
        self.status.connection = event.text
        self.status.provider = self.backend.provider_label(via_server=event.connected)

    async def action_regenerate(self) -> None:
        """Answer the last user message again (the old reply is tombstoned)."""
        if self.replying or not self.backend.is_open:
            return
        if self.day != self.today:
            await self.load_day(self.today)
        user = self.conversation.last_view("user")
        if user is None:
            self.notify("There is nothing to regenerate yet.")
            return
        await self.retract(user.message, keep_user=True)
        self.start_reply(ReplyJob(user_message=user.message, day=self.today))

    @on(ErrorNotice.RetryPressed)
    async def _retry(self) -> None:
        await self.action_regenerate()
        self.composer.focus()

    @on(Notices.Acted)
    def _notice_acted(self) -> None:
        self.composer.focus()

    async def retract(self, message: Message, *, keep_user: bool = False) -> None:
        """Tombstone `message` (unless `keep_user`) and every message after it."""
        views = self.conversation.views
        index = next(
            (i for i, v in enumerate(views) if v.message.id == message.id), None
        )
        if index is None:
            return
        for view in views[index + 1 if keep_user else index :]:
            self.backend.delete_message(view.message.id)
            await view.remove()

    # -- while a reply streams -----------------------------------------------
    @on(ReplyStream.Started)
    def _typing_started(self) -> None:
        heap.settle()  # no full collection of the page while the reply streams
        self.typing.active = True
        self.status.start_clock(tick=self.host.motion)

    @on(ReplyStream.Stopped)
    def _typing_stopped(self) -> None:
        self.typing.active = False
        self.status.stop_clock()
        self.call_after_refresh(heap.settle)  # the reply is part of the page

    @on(ReplyStream.Finished)
    def _reply_finished(self, event: ReplyStream.Finished) -> None:
        self.status.show_finished(event.usage, event.elapsed)

    @on(ReplyStream.Failed)
    async def _reply_failed(self, event: ReplyStream.Failed) -> None:
        await self.show_error(event.reason, retry=event.retry)
        if event.needs_setup:
            self.host.open_setup(first_run=False)

    @on(ModelLoading)
    def _model_loading(self, event: ModelLoading) -> None:
        self.typing.model_note = event.text

    @on(ReplyStream.MemoryChanged)
    async def _memory_changed(self, event: ReplyStream.MemoryChanged) -> None:
        await self.notices.show_memory_change(
            event.tool, event.summary, event.memory_id
        )

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        """An unexpected error in a worker of this screen: a notice, not a crash."""
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            reason = f"{type(error).__name__}: {error}"
            self.notify(reason, title="Something went wrong", severity="error")

    async def show_error(self, reason: str, *, retry: bool = True) -> None:
        """An in-chat notice (with Retry when it can help), never a crash."""
        await self.notices.show_error(reason, retry=retry)
        self.app.bell()

    # -- cancel and edit -----------------------------------------------------
    def action_cancel(self) -> None:
        """Esc: stop the reply (partial text is kept), or leave edit mode."""
        if self.replies.cancel():
            self.notify("Stopped. The partial reply is kept, marked interrupted.")
        elif self.editing is not None:
            self.end_edit()
            self.composer.clear()
        else:
            self.composer.focus()

    @on(Composer.ScreenKey)
    async def _screen_key(self, event: Composer.ScreenKey) -> None:
        if event.key != "backspace":  # PageUp/PageDown/Home/End: through the day
            await self.conversation.scroll_key(event.key)
        elif self.pending:
            self.notify(f"Removed {self.pending.pop().name}; it will not be sent.")
            self._show_pending()

    @on(Composer.EditLastRequested)
    def _edit_last_requested(self) -> None:
        self.action_edit_last()

    def action_edit_last(self) -> None:
        """Put the last message you wrote today into the composer to edit."""
        user = self.conversation.last_view("user") if self.day == self.today else None
        if user is None:
            self.notify("You have not written anything today yet.")
        else:
            chat_edit.start_edit(self, user)

    def end_edit(self) -> None:
        self.editing = None
        self._show_pending()

    def _show_pending(self) -> None:
        files = [a.name for a in self.pending]
        after = chat_edit.replaced_after(self)
        self.query_one(ComposeHint).show(
            editing=self.editing is not None, files=files, after=after
        )

    # -- what a message asks for ---------------------------------------------
    @on(CopyRequested)
    def _copy(self, event: CopyRequested) -> None:
        self.copy_text(event.view.message.content, "message")

    @on(CopyCodeRequested)
    def _copy_code(self, event: CopyCodeRequested) -> None:
        code = event.view.next_code_block()
        if code is None:
            self.notify("This message has no code block.")
        else:
            self.copy_text(code, "code block")

    @on(EditRequested)
    def _edit(self, event: EditRequested) -> None:
        chat_edit.start_edit(self, event.view)

    @on(DeleteRequested)
    def _delete(self, event: DeleteRequested) -> None:
        view = event.view
        if self.replying and view is self.conversation.views[-1]:
            self.notify("Stop the reply (Esc) before deleting it.")
            return
        chat_dialogs.confirm_delete(self, view)

    @on(DeleteConfirmed)
    def _delete_confirmed(self, event: DeleteConfirmed) -> None:
        self.run_worker(
            self._delete_view(event.view), group="delete", exit_on_error=False
        )

    async def _delete_view(self, view: MessageView) -> None:
        self.backend.delete_message(view.message.id)
        await view.remove()
        self.notify("Message deleted.")

    def copy_text(self, text: str, what: str) -> None:
        """Copy via OSC 52 (works over SSH in most terminals)."""
        self.app.copy_to_clipboard(text)
        self.notify(f"Copied the {what} ({len(text)} characters).")

    def action_copy_last(self, code: bool = False) -> None:
        view = self.conversation.last_view("assistant")
        if view is None:
            self.notify("Grizz has not said anything on this day yet.")
        elif code:
            view.action_copy_code()
        else:
            view.action_copy()

    # -- other screens -------------------------------------------------------
    async def action_undo_memory(self) -> None:
        await self.notices.undo_last()

    def action_days(self) -> None:
        if self.backend.is_open:
            chat_dialogs.pick_day(self, self.backend.db, self.today, self.day)

    def action_search(self) -> None:
        if self.backend.is_open:
            chat_dialogs.search(self, self.backend.db, self.host)

    def action_memory(self) -> None:
        if self.backend.is_open:
            self.host.open_memory()

    def action_help(self) -> None:
        self.host.show_help()

    def action_settings(self) -> None:
        self.host.open_setup(first_run=False)

    def action_attach(self) -> None:
        chat_dialogs.attach_image(self)

    @on(DayChosen)
    def _day_chosen(self, event: DayChosen) -> None:
        self.run_worker(
            self.load_day(event.day, focus_id=event.focus_id),
            group="load",
            exclusive=True,
            exit_on_error=False,
        )

    @on(ImageAttached)
    def _image_attached(self, event: ImageAttached) -> None:
        self.pending.append(event.attachment)
        self._show_pending()
        self.composer.focus()
