"""The composer: a growing text area where Enter sends, and its hint line.

Enter posts `Composer.Submitted`; the configured newline key (`tui.newline_key`,
default Ctrl+J) inserts a line break. Many terminals send the same bytes for
Shift+Enter and Enter, so the status bar always shows the newline key.

Must not import: the store or the core.
"""

from __future__ import annotations

from textual import events
from textual.message import Message
from textual.widgets import Static, TextArea


class Composer(TextArea):
    """Where the user writes to Grizz."""

    DEFAULT_CSS = """
    Composer {
        height: auto;
        min-height: 3;
        max-height: 12;
    }
    """

    class Submitted(Message):
        """The user pressed Enter with some text."""

        def __init__(self, composer: Composer, text: str) -> None:
            super().__init__()
            self.composer = composer
            self.text = text

        @property
        def control(self) -> Composer:
            return self.composer

    class EditLastRequested(Message):
        """Up was pressed in an empty composer: edit the last message."""

    class ScreenKey(Message):
        """A key for the screen, not the text: PageUp/PageDown while the text
        fits the composer and Home/End while it is empty move through the day;
        Backspace in an empty composer drops the last image waiting to go."""

        def __init__(self, key: str) -> None:
            super().__init__()
            self.key = key

    def __init__(
        self,
        *,
        newline_key: str = "ctrl+j",
        placeholder: str = "",
        blink: bool = True,
        id: str | None = None,
    ) -> None:
        super().__init__(
            id=id,
            soft_wrap=True,
            tab_behavior="focus",
            show_line_numbers=False,
            compact=True,
            placeholder=placeholder,
        )
        self.cursor_blink = blink
        self.newline_keys = {k.strip() for k in newline_key.split(",") if k.strip()}

    async def _on_key(self, event: events.Key) -> None:
        if event.key in self.newline_keys:
            event.stop()
            event.prevent_default()
            start, end = self.selection
            self._replace_via_keyboard("\n", start, end)
            return
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            text = self.text
            if text.strip():
                self.post_message(self.Submitted(self, text))
            return
        message = self._message_for(event.key)
        if message is not None:
            event.stop()
            event.prevent_default()
            self.post_message(message)
            return
        await super()._on_key(event)

    def _message_for(self, key: str) -> Message | None:
        """What a key asks of the screen rather than of the text, if anything."""
        if key in ("pageup", "pagedown") and self.max_scroll_y == 0:
            return self.ScreenKey(key)
        if self.text:
            return None
        if key in ("home", "end", "backspace"):
            return self.ScreenKey(key)
        return self.EditLastRequested() if key == "up" else None

    def take(self, sent: str) -> None:
        """Remove `sent` (just sent) from the start, keeping anything typed
        after the Enter that sent it (the send is handled a moment later, and
        clearing then lost those keys)."""
        text = self.text
        rest = text[len(sent) :] if text.startswith(sent) else text
        if rest == text:
            return
        self.load_text(rest)
        self.move_cursor(self.document.end)


class ComposeHint(Static):
    """What the next send does besides sending: resend an edit, attach images.

    Hidden while there is nothing to say.
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.display = False

    def show(self, *, editing: bool, files: list[str], after: int = 0) -> None:
        """Show the edit-mode line (`after`: how many messages after the edited
        one its resend replaces) and/or the images waiting to be sent."""
        parts = []
        if editing and after > 1:
            parts.append(
                f"✎ Editing an earlier message · Enter resends it, replacing the "
                f"{after} messages after it · Esc cancels"
            )
        elif editing:
            parts.append("✎ Editing your last message · Enter resends · Esc cancels")
        if files:
            parts.append(
                "📎 " + ", ".join(files) + " (sent with your message;"
                " Backspace in an empty box removes the last)"
            )
        self.update("\n".join(parts))
        self.display = bool(parts)
