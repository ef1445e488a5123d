"""What the user can do to messages on the chat screen, and the other screens
it opens: regenerate, edit and resend, delete, copy, memory undo, days,
search, memory, help, settings, attach.

A mixin of `ChatScreen`, kept apart so each module stays readable.

Must not import: httpx, the store or the core at module level.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from grizz_core.errors import GrizzError

if TYPE_CHECKING:
    from grizz_core.companion.session import ToolUsed
    from grizz_core.domain import Message, SearchHit
    from grizz_tui.tui.screens.chat import ChatScreen
    from grizz_tui.tui.widgets.message_view import MessageView
    from grizz_tui.tui.widgets.notices import MemoryNotice

# Handlers use Textual's naming convention (`on_<widget>_<message>`) rather
# than `@on`, which only registers on message-pump classes, and so that
# MessageView (and Markdown) need not be imported before the first frame.


class ChatActions:
    """Message actions and navigation for `ChatScreen`."""

    # -- regenerate / retry --------------------------------------------------
    async def action_regenerate(self: ChatScreen) -> None:  # type: ignore[misc]
        """Answer the last user message again (the old reply is tombstoned)."""
        if self.replying or not self.grizz.backend.is_open:
            return
        if self.day != self.today:
            await self.load_day(self.today)
        user = self.conversation.last_view("user")
        if user is None:
            self.notify("There is nothing to regenerate yet.")
            return
        await self.retract(user.message, keep_user=True)
        from grizz_tui.tui.screens.chat_reply import ReplyJob

        self.start_reply(ReplyJob(user_message=user.message))

    async def on_error_notice_retry_pressed(self: ChatScreen) -> None:  # type: ignore[misc]
        await self.action_regenerate()

    async def retract(  # type: ignore[misc]
        self: ChatScreen, message: Message, *, keep_user: bool = False
    ) -> None:
        """Tombstone `message` (unless `keep_user`) and every message after it."""
        from grizz_tui.store.conversations import delete_message

        views = self.conversation.views
        index = next(
            (i for i, v in enumerate(views) if v.message.id == message.id), None
        )
        if index is None:
            return
        doomed = views[index + 1 if keep_user else index :]
        db = self.grizz.backend.db
        for view in doomed:
            delete_message(db, view.message.id)
            await view.remove()

    # -- edit ----------------------------------------------------------------
    def action_edit_last(self: ChatScreen) -> None:  # type: ignore[misc]
        """Put the last message you wrote today into the composer to edit."""
        if self.replying:
            self.notify("Wait for the reply (or press Esc) before editing.")
            return
        user = self.conversation.last_view("user") if self.day == self.today else None
        if user is None:
            self.notify("You have not written anything today yet.")
            return
        self.editing = user.message
        self.composer.load_text(user.message.content)
        self.composer.move_cursor(self.composer.document.end)
        self.composer.focus()
        self._show_pending()

    def on_composer_edit_last_requested(self: ChatScreen) -> None:  # type: ignore[misc]
        self.action_edit_last()

    # -- per-message actions ---------------------------------------------------
    async def on_message_view_action(  # type: ignore[misc]
        self: ChatScreen, event: MessageView.Action
    ) -> None:
        view = event.view
        if event.verb == "copy":
            self.copy_text(view.message.content, "message")
        elif event.verb == "copy_code":
            code = view.next_code_block()
            if code is None:
                self.notify("This message has no code block.")
            else:
                self.copy_text(code, "code block")
        elif event.verb == "edit":
            last = self.conversation.last_view("user")
            if last is not view or self.day != self.today:
                self.notify("Only your last message of today can be edited.")
            else:
                self.action_edit_last()
        elif event.verb == "delete":
            await self.ask_delete(view)

    def copy_text(self: ChatScreen, text: str, what: str) -> None:  # type: ignore[misc]
        """Copy via OSC 52 (works over SSH in most terminals)."""
        self.app.copy_to_clipboard(text)
        self.notify(f"Copied the {what} ({len(text)} characters).")

    def action_copy_last(self: ChatScreen, code: bool = False) -> None:  # type: ignore[misc]
        view = self.conversation.last_view("assistant")
        if view is None:
            self.notify("Grizz has not said anything on this day yet.")
        elif code:
            view.action_copy_code()
        else:
            view.action_copy()

    async def ask_delete(self: ChatScreen, view: MessageView) -> None:  # type: ignore[misc]
        from grizz_tui.tui.screens.confirm import ConfirmScreen

        if self.replying and view is self.conversation.views[-1]:
            self.notify("Stop the reply (Esc) before deleting it.")
            return
        preview = " ".join(view.message.content.split())[:60] or "(empty)"

        def done(yes: bool | None) -> None:
            if yes:
                self.run_worker(self._delete(view), group="delete", exit_on_error=False)

        self.app.push_screen(
            ConfirmScreen(f"Delete this message?\n\n{preview}", "Delete"), done
        )

    async def _delete(self: ChatScreen, view: MessageView) -> None:  # type: ignore[misc]
        from grizz_tui.store.conversations import delete_message

        delete_message(self.grizz.backend.db, view.message.id)
        await view.remove()
        self.notify("Message deleted.")

    # -- memory notices --------------------------------------------------------
    async def memory_changed(self: ChatScreen, event: ToolUsed) -> None:  # type: ignore[misc]
        if (
            event.name not in ("remember", "forget")
            or not event.ok
            or not event.memory_id
        ):
            return
        notices = self.query_one("#notices")
        from grizz_tui.tui.widgets.notices import MemoryNotice

        await notices.query(".notice.-memory").remove()
        await notices.mount(MemoryNotice(event.name, event.summary, event.memory_id))

    async def on_memory_notice_undo_pressed(  # type: ignore[misc]
        self: ChatScreen, event: MemoryNotice.UndoPressed
    ) -> None:
        await self.undo_memory(event.notice)

    async def action_undo_memory(self: ChatScreen) -> None:  # type: ignore[misc]
        from grizz_tui.tui.widgets.notices import MemoryNotice

        notices = list(self.query(MemoryNotice))
        if not notices:
            self.notify("There is no memory change to undo.")
            return
        await self.undo_memory(notices[-1])

    async def undo_memory(self: ChatScreen, notice: MemoryNotice) -> None:  # type: ignore[misc]
        from grizz_tui.store import memory

        db = self.grizz.backend.db
        if notice.tool == "remember":
            memory.delete_memory(db, notice.memory_id)
            self.notify("Undone: Grizz forgot that again.")
        else:
            memory.restore_memory(db, notice.memory_id)
            self.notify("Undone: the note is back.")
        await notice.remove()

    # -- other screens ---------------------------------------------------------
    def action_days(self: ChatScreen) -> None:  # type: ignore[misc]
        from grizz_tui.tui.screens.days import DaysScreen

        if not self.grizz.backend.is_open:
            return

        def chosen(day: str | None) -> None:
            if day:
                self.run_worker(
                    self.load_day(day),
                    group="load",
                    exclusive=True,
                    exit_on_error=False,
                )

        self.app.push_screen(
            DaysScreen(self.grizz.backend.db, self.today, self.day), chosen
        )

    def action_search(self: ChatScreen) -> None:  # type: ignore[misc]
        from grizz_tui.tui.screens.search import SearchScreen

        if not self.grizz.backend.is_open:
            return

        def chosen(hit: SearchHit | None) -> None:
            if hit is None:
                return
            if hit.kind == "message":
                self.run_worker(
                    self.load_day(hit.day, focus_id=hit.id),
                    group="load",
                    exit_on_error=False,
                )
            else:
                self.grizz.open_memory(focus_id=hit.id)

        self.app.push_screen(SearchScreen(self.grizz.backend.db), chosen)

    def action_memory(self: ChatScreen) -> None:  # type: ignore[misc]
        if self.grizz.backend.is_open:
            self.grizz.open_memory()

    def action_help(self: ChatScreen) -> None:  # type: ignore[misc]
        from grizz_tui.tui.screens.help import HelpScreen

        self.app.push_screen(HelpScreen(self.grizz.binding_rows()))

    def action_settings(self: ChatScreen) -> None:  # type: ignore[misc]
        self.grizz.open_setup(first_run=False)

    def action_attach(self: ChatScreen) -> None:  # type: ignore[misc]
        from grizz_tui.tui.screens.attach import AttachScreen

        def chosen(path: str | None) -> None:
            if path:
                self.run_worker(
                    self._attach_image(path), group="attach", exit_on_error=False
                )

        self.app.push_screen(AttachScreen(), chosen)

    async def _attach_image(self: ChatScreen, path: str) -> None:  # type: ignore[misc]
        from grizz_core.companion.attachments import load_image

        try:
            attachment = await asyncio.to_thread(load_image, path)
        except GrizzError as exc:
            self.notify(str(exc), title="Not attached", severity="error")
            return
        self.pending.append(attachment)
        self._show_pending()
        self.composer.focus()
