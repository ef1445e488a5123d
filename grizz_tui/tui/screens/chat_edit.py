"""Editing a message in the composer (`e` on a focused message, Ctrl+L, Up).

One of your messages of today: its text goes into the composer, and Enter
resends it, replacing it and every message after it (the chat screen's
`retract`); the hint says how many that is. A message of another day: its
text goes into the composer as a new message for today (an earlier day is
never rewritten). Grizz's messages are not yours to edit.

Must not import: the store or the core at module level; the app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from grizz_tui.tui.screens.chat import ChatScreen
    from grizz_tui.tui.widgets.message_view import MessageView


def start_edit(chat: ChatScreen, view: MessageView) -> None:
    """Put `view`'s message into the composer (see the module docstring)."""
    message = view.message
    if str(message.role) != "user":
        chat.notify("Only your own messages can be edited.")
        return
    if chat.replying:
        chat.notify("Wait for the reply (or press Esc) before editing.")
        return
    if chat.day == chat.today:
        chat.editing = message
    else:
        chat.editing = None
        chat.notify("Its text is in the composer; Enter sends it as new today.")
    chat.composer.load_text(message.content)
    chat.composer.move_cursor(chat.composer.document.end)
    chat.composer.focus()
    chat._show_pending()


def replaced_after(chat: ChatScreen) -> int:
    """How many messages after the one being edited its resend replaces."""
    if chat.editing is None:
        return 0
    ids = [v.message.id for v in chat.conversation.views]
    return len(ids) - ids.index(chat.editing.id) - 1 if chat.editing.id in ids else 0
