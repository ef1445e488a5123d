"""The scrolling list of one day's messages.

Only the chosen day is loaded, and of a long day only the last `WINDOW`
messages are mounted at first ("Show earlier" mounts the rest), so opening a
day costs the same however much history there is.

Must not import: the store or the core at module level; `MessageView`
(and so Textual's Markdown) is imported when the first message is mounted,
after the first frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from textual import on
from textual.containers import VerticalScroll
from textual.widgets import Button, Static

if TYPE_CHECKING:
    from textual.app import ComposeResult

    from grizz_core.domain import Message
    from grizz_tui.tui.widgets.message_view import MessageView

WINDOW = 24
"""Messages of a day mounted when it opens (the rest behind "Show earlier")."""
FIRST_PAINT = 8
"""Of those, how many are mounted before the first paint of the day."""
GREETING = (
    "🐻 Hi, I'm Grizz. Tell me how your day is going, or ask me anything.\n"
    "Everything we say today stays in today's page; I'll remember what matters."
)


class Conversation(VerticalScroll, can_focus=False):
    """Messages of one day, oldest at the top; anchored to the bottom."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._earlier: list[Message] = []
        self._files: dict[str, list[str]] = {}

    def compose(self) -> ComposeResult:
        yield Static(GREETING, id="greeting")

    @property
    def views(self) -> list[MessageView]:
        from grizz_tui.tui.widgets.message_view import MessageView

        return list(self.query_children(MessageView))

    def view_of(self, message_id: str) -> MessageView | None:
        for view in self.views:
            if view.message.id == message_id:
                return view
        return None

    def last_view(self, role: str) -> MessageView | None:
        for view in reversed(self.views):
            if str(view.message.role) == role:
                return view
        return None

    async def show(
        self,
        messages: Sequence[Message],
        *,
        files: dict[str, list[str]] | None = None,
        focus_id: str | None = None,
    ) -> None:
        """Replace the list with `messages` (a whole day), mounting a window."""
        from grizz_tui.tui.widgets.message_view import MessageView

        self._files = dict(files or {})
        start = max(0, len(messages) - WINDOW)
        if focus_id is not None:
            index = next((i for i, m in enumerate(messages) if m.id == focus_id), start)
            start = min(start, index)
        self._earlier = list(messages[:start])
        with self.app.batch_update():
            await self.remove_children()
            widgets = [
                MessageView(m, files=self._files.get(m.id), highlight=m.id == focus_id)
                for m in messages[start:]
            ]
            if self._earlier:
                await self.mount(
                    Button(self._earlier_label(), id="earlier", compact=True)
                )
            # The bottom of the day first (what the user sees); the rest of the
            # window right after that paint, above it.
            later = widgets[:-FIRST_PAINT] if focus_id is None else []
            first = widgets[len(later) :]
            await self.mount_all(first or [Static(GREETING, id="greeting")])
        if focus_id is not None and (target := self.view_of(focus_id)) is not None:
            self.call_after_refresh(self._reveal, target)
        else:
            self.anchor()
        if later:
            self.call_after_refresh(self._mount_above, later, first[0])

    async def _mount_above(self, views: list[MessageView], anchor: MessageView) -> None:
        if anchor.is_attached:
            await self.mount_all(views, before=anchor)

    def _reveal(self, view: MessageView) -> None:
        self.scroll_to_widget(view, top=True, animate=False)
        view.focus()

    def _earlier_label(self) -> str:
        return f"▲ Show {len(self._earlier)} earlier messages"

    @on(Button.Pressed, "#earlier")
    async def _show_earlier(self, event: Button.Pressed) -> None:
        from grizz_tui.tui.widgets.message_view import MessageView

        event.stop()
        earlier, self._earlier = self._earlier, []
        await event.button.remove()
        first = self.views[0] if self.views else None
        views = [MessageView(m, files=self._files.get(m.id)) for m in earlier]
        await self.mount_all(views, before=first)
        if views:
            self.scroll_to_widget(views[-1], animate=False)

    async def add(
        self, message: Message, *, files: list[str] | None = None
    ) -> MessageView:
        """Mount one new message at the bottom."""
        from grizz_tui.tui.widgets.message_view import MessageView

        for greeting in self.query("#greeting"):
            await greeting.remove()
        view = MessageView(message, files=files)
        await self.mount(view)
        return view
