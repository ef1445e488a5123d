"""The chat screen: one day's conversation, the composer, the status bar.

The first frame shows only the composer and an empty list; the store is
opened right after it, and the provider on first send (see `tui.backend`).
Sending runs `ChatSession.send()` in an exclusive worker; Esc cancels it and
the session stores the partial reply as `interrupted`. Message-level actions
(regenerate, edit, delete, copy, memory undo) live in `chat_actions.py`.

Must not import: httpx, the store or the core at module level.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from grizz_core.errors import GrizzError
from grizz_tui.tui.messages import DayShown
from grizz_tui.tui.screens.chat_actions import ChatActions
from grizz_tui.tui.screens.chat_reply import ChatReplies, ReplyJob
from grizz_tui.tui.widgets.composer import Composer
from grizz_tui.tui.widgets.conversation import Conversation
from grizz_tui.tui.widgets.status_bar import StatusBar
from grizz_tui.tui.widgets.typing_indicator import TypingIndicator

if TYPE_CHECKING:
    from textual.app import ComposeResult
    from textual.timer import Timer

    from grizz_core.domain import Attachment, Message
    from grizz_tui.tui.app import GrizzApp


WARM_UP_DELAY = 0.2
"""Seconds after the day is painted before the core is imported."""


class ChatScreen(ChatReplies, ChatActions, Screen[None]):
    """Today's (or a chosen day's) conversation with Grizz."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Stop", id="cancel", tooltip="Stop Grizz's reply."),
        Binding("ctrl+r", "regenerate", "Regenerate", id="regenerate"),
        Binding("ctrl+l", "edit_last", "Edit last", id="edit_last"),
        Binding("ctrl+g", "days", "Days", id="days"),
        Binding("ctrl+f", "search", "Search", id="search"),
        Binding("ctrl+n", "memory", "Memory", id="memory"),
        Binding("ctrl+o", "attach", "Attach image", id="attach"),
        Binding("f1", "help", "Help", id="help"),
        Binding("ctrl+s", "settings", "Settings", id="settings"),
        Binding("f8", "undo_memory", "Undo memory", id="undo_memory", show=False),
    ]

    def __init__(self, *, day: str | None = None) -> None:
        super().__init__(id="chat")
        self.requested_day = day
        self.day = ""
        """The day on screen (YYYY-MM-DD); '' until the store is open."""
        self.today = ""
        self.editing: Message | None = None
        self.unusable = ""
        """Why the store could not be opened ('' when it is fine)."""
        self.pending: list[Attachment] = []
        self.reply_worker: Worker[None] | None = None
        self._started = 0.0
        self._clock: Timer | None = None
        """Ticks the elapsed time in the status bar while a reply streams."""

    @property
    def grizz(self) -> GrizzApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Static("", id="day-bar")
        yield Conversation(id="conversation")
        with Vertical(id="bottom"):
            yield Vertical(id="notices")
            yield TypingIndicator(animate=self.grizz.motion, id="typing")
            yield Static("", id="compose-hint")
            yield Composer(
                id="composer",
                newline_key=self.grizz.settings.tui_newline_key,
                placeholder="Write to Grizz… (Enter sends)",
                blink=self.grizz.motion,
            )
            yield StatusBar(id="status")

    def on_mount(self) -> None:
        self.composer.focus()
        self.typing.display = False
        self.query_one("#compose-hint").display = False
        self.status.provider = self.grizz.backend.provider_label()
        newline = self.grizz.settings.tui_newline_key
        self.status.hints = (
            f"Enter send · {newline} newline · ctrl+p commands · F1 help"
        )
        self.query_one("#day-bar", Static).update("🐻 Grizz")
        self.call_after_refresh(self.start_up)

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
    def replying(self) -> bool:
        return self.reply_worker is not None and self.reply_worker.is_running

    # -- start-up ------------------------------------------------------------
    @work(group="startup", exit_on_error=False)
    async def start_up(self) -> None:
        """After the first paint: open the store, show the day, then warm up."""
        self.grizz.first_frame_shown()
        backend = self.grizz.backend
        from grizz_core.days import today

        try:
            self.today = today(self.grizz.settings.timezone)
            # In a thread: imports, migrations on a first run or after an
            # upgrade, and orphan recovery must not hold up the first frames.
            await asyncio.to_thread(backend.open_store)
        except GrizzError as exc:
            self.unusable = str(exc)
            await self.show_error(self.unusable, retry=False)
            return
        if backend.recovered:
            count = backend.recovered
            self.notify(
                f"{count} reply cut off last time was kept and marked interrupted.",
                title="Recovered",
            )
        await self.load_day(self.requested_day or self.today)
        # The core (httpx) is imported only once the day is painted: a thread
        # import holds the GIL and would delay that paint by its whole cost.
        self.call_after_refresh(self.warm_up)

    @work(group="startup", exit_on_error=False)
    async def warm_up(self) -> None:
        """Import the core ahead of the first send; open setup if needed, or
        start loading the local model when it is the provider."""
        backend = self.grizz.backend
        await asyncio.sleep(WARM_UP_DELAY)
        await asyncio.to_thread(backend.import_core)
        if backend.needs_setup():
            self.grizz.open_setup(first_run=True)
        elif backend.uses_local_model():
            self.preload_model()

    async def load_day(self, day: str, *, focus_id: str | None = None) -> None:
        """Show `day`'s conversation (only that day is read)."""
        from grizz_tui.store import conversations as conv

        db = self.grizz.backend.db
        found = conv.get_conversation(db, day)
        messages = conv.messages_of(db, found.id) if found is not None else []
        files = {
            m.id: names
            for m in messages
            if str(m.role) == "user"
            and (names := [a.name for a in conv.attachments_of(db, m.id)])
        }
        self.day = day
        self._show_day_bar()
        await self.conversation.show(messages, files=files, focus_id=focus_id)
        last_reply = next(
            (m for m in reversed(messages) if str(m.role) == "assistant"), None
        )
        if last_reply is not None:
            self.status.show_usage(last_reply.metadata.get("usage") or {})
        self.post_message(DayShown(day, len(messages)))

    def _show_day_bar(self) -> None:
        import datetime as dt

        if self.day == self.today:
            label = "Today"
        else:
            label = dt.date.fromisoformat(self.day).strftime("%A %d %B %Y")
            label += "  (reading an earlier day · Enter writes to today)"
        self.query_one("#day-bar", Static).update(f"🐻 Grizz · {label}")

    # -- sending -------------------------------------------------------------
    @on(Composer.Submitted)
    async def submitted(self, event: Composer.Submitted) -> None:
        if self.replying:
            self.notify(
                "Grizz is still answering; Esc stops the reply.", severity="warning"
            )
            return
        if not self.grizz.backend.is_open:
            why = self.unusable or "Still opening your conversations…"
            self.notify(why, severity="error" if self.unusable else "warning")
            return
        text = event.text.strip("\n")
        if self.day != self.today:
            await self.load_day(self.today)
        if self.editing is not None:
            await self.retract(self.editing)
            self.end_edit()
        self.composer.clear()
        files, self.pending = self.pending, []
        self._show_pending()
        self.start_reply(ReplyJob(text=text, attachments=files))

    @on(Worker.StateChanged)
    async def worker_failed(self, event: Worker.StateChanged) -> None:
        """An unexpected error in a worker of this screen: a notice, not a crash."""
        if event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        reason = f"{type(error).__name__}: {error}"
        if event.worker.group == "reply":
            self._end_typing()
            await self.show_error(reason)
        else:
            self.notify(reason, title="Something went wrong", severity="error")

    # -- cancel --------------------------------------------------------------
    def action_cancel(self) -> None:
        """Esc: stop the reply (partial text is kept), or leave edit mode."""
        if self.replying and self.reply_worker is not None:
            self.reply_worker.cancel()
            self.notify("Stopped. The partial reply is kept, marked interrupted.")
        elif self.editing is not None:
            self.end_edit()
            self.composer.clear()
        else:
            self.composer.focus()

    def end_edit(self) -> None:
        self.editing = None
        self._show_pending()

    def _show_pending(self) -> None:
        hint = self.query_one("#compose-hint", Static)
        parts = []
        if self.editing is not None:
            parts.append("✎ Editing your last message · Enter resends · Esc cancels")
        if self.pending:
            parts.append(
                "📎 "
                + ", ".join(a.name for a in self.pending)
                + " (sent with your message)"
            )
        hint.update("\n".join(parts))
        hint.display = bool(parts)
