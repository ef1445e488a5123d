"""The dialogs the chat screen opens: the day navigator, search, the image
picker, the delete confirmation. What the user chose comes back to the chat
screen as messages (`DayChosen`, `ImageAttached`, `DeleteConfirmed`); a note
found by search opens the memory screen through the `ChatHost`.

Must not import: httpx, the store or the core at module level; the app or
the chat screen.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from textual.message import Message

from grizz_core.errors import GrizzError

if TYPE_CHECKING:
    from textual.screen import Screen

    from grizz_core.domain import Attachment, SearchHit
    from grizz_tui.store.db import Database
    from grizz_tui.tui.host import ChatHost
    from grizz_tui.tui.widgets.message_view import MessageView


class DayChosen(Message):
    """The user picked a day to read (from the navigator or a search hit)."""

    def __init__(self, day: str, *, focus_id: str | None = None) -> None:
        super().__init__()
        self.day = day
        self.focus_id = focus_id
        """The message found by search, to show and highlight."""


class ImageAttached(Message):
    """An image was read and goes with the next message."""

    def __init__(self, attachment: Attachment) -> None:
        super().__init__()
        self.attachment = attachment


class DeleteConfirmed(Message):
    """The user confirmed deleting the message `view` shows."""

    def __init__(self, view: MessageView) -> None:
        super().__init__()
        self.view = view


def pick_day(screen: Screen[None], db: Database, today: str, day: str) -> None:
    """Open the day navigator over `screen`; posts `DayChosen` to it."""
    from grizz_tui.tui.screens.days import DaysScreen

    def chosen(picked: str | None) -> None:
        if picked:
            screen.post_message(DayChosen(picked))

    screen.app.push_screen(DaysScreen(db, today, day), chosen)


def search(screen: Screen[None], db: Database, host: ChatHost) -> None:
    """Open search over `screen`: a message hit posts `DayChosen` to it, a
    note hit opens the memory screen on that note."""
    from grizz_tui.tui.screens.search import SearchScreen

    def chosen(hit: SearchHit | None) -> None:
        if hit is None:
            return
        if hit.kind == "message":
            screen.post_message(DayChosen(hit.day, focus_id=hit.id))
        else:
            host.open_memory(focus_id=hit.id)

    screen.app.push_screen(SearchScreen(db), chosen)


def attach_image(screen: Screen[None]) -> None:
    """Open the image picker over `screen`; the image is read in a worker of
    `screen`, which gets `ImageAttached` (or a notification of why not)."""
    from grizz_tui.tui.screens.attach import AttachScreen

    async def load(path: str) -> None:
        from grizz_core.companion.attachments import load_image

        try:
            attachment = await asyncio.to_thread(load_image, path)
        except GrizzError as exc:
            screen.notify(str(exc), title="Not attached", severity="error")
            return
        screen.post_message(ImageAttached(attachment))

    def chosen(path: str | None) -> None:
        if path:
            screen.run_worker(load(path), group="attach", exit_on_error=False)

    screen.app.push_screen(AttachScreen(), chosen)


def confirm_delete(screen: Screen[None], view: MessageView) -> None:
    """Ask before deleting `view`'s message; posts `DeleteConfirmed` on yes."""
    from grizz_tui.tui.screens.confirm import ConfirmScreen

    preview = " ".join(view.message.content.split())[:60] or "(empty)"

    def done(yes: bool | None) -> None:
        if yes:
            screen.post_message(DeleteConfirmed(view))

    question = f"Delete this message?\n\n{preview}"
    screen.app.push_screen(ConfirmScreen(question, "Delete"), done)
