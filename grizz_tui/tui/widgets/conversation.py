"""The scrolling list of one day's messages.

Only the chosen day is loaded, and of a long day only the last `WINDOW`
messages are mounted at first ("Show earlier" mounts the rest), so opening a
day costs the same however much history there is.

Replies (and Markdown blocks of a reply) more than `CULL_MARGIN` viewports
away from what is on screen are culled (`tui.widgets.culling`) after every
scroll and layout change: Textual lays out the whole widget tree on each
refresh, and ten long replies are thousands of Markdown blocks; culled, the
layout costs what is near the viewport, however long the day.

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
CULL_MARGIN = 1.0
"""Viewports above and below the visible one whose widgets stay laid out."""
CULL_CHECK = 0.25
"""Seconds between checks for a layout change that moved the viewport: an
anchored scroll and new content change it without a scroll or resize event."""
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
        self._cull_pending = False
        self._culled_at: tuple[float, int, int] = (-1.0, -1, -1)
        """Scroll offset and virtual size at the last cull."""

    def compose(self) -> ComposeResult:
        yield Static(GREETING, id="greeting")

    def on_mount(self) -> None:
        self.set_interval(CULL_CHECK, self._check_cull)

    def _check_cull(self) -> None:
        size = self.virtual_size
        if (self.scroll_y, size.width, size.height) != self._culled_at:
            self.schedule_cull()

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self.schedule_cull()

    def on_resize(self) -> None:
        self.schedule_cull()

    def schedule_cull(self) -> None:
        """Cull (and uncull) replies after the next refresh (once per refresh)."""
        if not self._cull_pending:
            self._cull_pending = True
            self.call_after_refresh(self._cull)

    def _cull(self) -> None:
        from grizz_tui.tui.widgets.culling import Window

        self._cull_pending = False
        size = self.virtual_size
        self._culled_at = (self.scroll_y, size.width, size.height)
        visible = self.scrollable_content_region
        if not visible.height or not self.query_children(".message"):
            return  # (and Markdown is not imported before the first message)
        window = Window(visible, round(visible.height * CULL_MARGIN))
        changed = False
        for view in self.views:
            changed = view.cull(window) or changed
        if changed:  # blocks of an unculled reply are placed on the next pass
            self.schedule_cull()

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
        # Shown and highlighted, not focused: the composer keeps the keys.
        self.scroll_to_widget(view, top=True, animate=False)

    def _earlier_label(self) -> str:
        return f"▲ Show {len(self._earlier)} earlier messages"

    async def scroll_key(self, key: str) -> None:
        """PageUp/PageDown/Home/End typed in the composer move through the day;
        PageUp at the top and Home bring in the earlier messages first."""
        if key == "home" or (key == "pageup" and self.scroll_y <= 0 and self._earlier):
            await self.show_earlier()
            if key == "pageup":
                return
        self.release_anchor()
        if key == "pageup":
            self.scroll_page_up(animate=False)
        elif key == "pagedown":
            self.scroll_page_down(animate=False)
        elif key == "home":
            self.scroll_home(animate=False)
        else:
            self.scroll_end(animate=False)
            self.anchor()  # back at the bottom: follow new replies again

    @on(Button.Pressed, "#earlier")
    async def _show_earlier(self, event: Button.Pressed) -> None:
        event.stop()
        await self.show_earlier()

    async def show_earlier(self) -> None:
        """Mount the messages kept behind "Show earlier" (if any)."""
        from grizz_tui.tui.widgets.message_view import MessageView

        if not self._earlier:
            return
        earlier, self._earlier = self._earlier, []
        await self.query_children("#earlier").remove()
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

        for greeting in self.query_children("#greeting"):
            await greeting.remove()
        view = MessageView(message, files=files)
        await self.mount(view)
        return view
