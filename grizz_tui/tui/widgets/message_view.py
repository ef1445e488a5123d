"""One message on the chat screen: a header line and its body.

Grizz's replies are Textual `Markdown`; while a reply streams, fragments go
through `Markdown.get_stream()` (which coalesces them and re-parses only the
last block), and `finish()` compares the result with the stored text and
updates only if they differ, so what is shown is exactly what was saved
(oterm #308).

A finished reply far from the viewport is *culled* (`cull`): its height is
pinned and its children hidden, so the screen's layout, done on every
streamed flush, key press and resize, skips its hundreds of Markdown blocks;
of a reply near the viewport, the blocks far from it are culled the same way
(`tui.widgets.culling`). The `Conversation` calls it after scrolls and
layout changes.

Must not import: the store or the core at module level.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.binding import BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.geometry import Size
from textual.widgets import Markdown, Static

from grizz_tui.tui.keys import rebindable
from grizz_tui.tui.messages import (
    CopyCodeRequested,
    CopyRequested,
    DeleteRequested,
    EditRequested,
)
from grizz_tui.tui.widgets.culling import Window, cull_all, is_culled, set_culled

if TYPE_CHECKING:
    from textual.app import ComposeResult
    from textual.layout import DockArrangeResult
    from textual.timer import Timer
    from textual.widgets.markdown import MarkdownStream

    from grizz_core.domain import Message

FLUSH_INTERVAL = 1 / 10
"""Seconds between screen updates while a reply streams. Each update re-lays
out the whole screen (Textual's compositor walks every widget), so updating
per token would cost O(reply length) per token; at a fixed rate the cost per token
falls with the arrival rate (10 Hz, as parllama); nothing is dropped (a trailing
flush)."""

BADGES = {
    "streaming": "",
    "interrupted": "interrupted",
    "error": "failed",
    "complete": "",
}


class ReplyMarkdown(Markdown):
    """A reply's Markdown, laid out independently of its own height.

    Textual arranges a container at its size, and every block's box model,
    down to each list item, is cached under that size: a streaming reply
    grows on each flush, so every block of it near the viewport was laid out
    again (the slowest key presses while a reply streams). Its blocks all
    have `height: auto`, so where they go does not depend on the height
    given: arranging at height 0 gives the same places under a stable key.
    """

    def arrange(self, size: Size, optimal: bool = False) -> DockArrangeResult:
        return super().arrange(Size(size.width, 0), optimal)


def code_blocks(markdown: str) -> list[str]:
    """The contents of the fenced code blocks of a Markdown text, in order."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("gfm-like").parse(markdown)
    return [t.content.rstrip("\n") for t in tokens if t.type in ("fence", "code_block")]


class MessageView(Vertical, can_focus=True):
    """A stored message: `You` or `Grizz`, a status badge, the text."""

    BINDINGS: ClassVar[list[BindingType]] = [
        rebindable("copy", "Copy", tooltip="Copy this message."),
        rebindable(
            "copy_code",
            "Copy code",
            tooltip="Copy the next code block of this message.",
        ),
        rebindable("delete", "Delete", tooltip="Delete this message."),
        rebindable("edit", "Edit", tooltip="Edit your last message and send it again."),
    ]

    def __init__(
        self,
        message: Message,
        *,
        files: list[str] | None = None,
        highlight: bool = False,
    ) -> None:
        super().__init__(id=f"m-{message.id}", classes=f"message -{message.role}")
        self.message = message
        self.files = files or []
        self._stream: MarkdownStream | None = None
        self._pending: list[str] = []
        self._flusher: Timer | None = None
        self._render_lock = asyncio.Lock()
        self._code_index = 0
        if highlight:
            self.add_class("-found")

    @property
    def is_reply(self) -> bool:
        return str(self.message.role) == "assistant"

    def compose(self) -> ComposeResult:
        yield Static(self._header(), classes="message-header")
        if self.is_reply:
            yield ReplyMarkdown(self.message.content, classes="message-body")
        else:
            yield Static(Content(self.message.content), classes="message-body")
        if self.files:
            yield Static(
                Content("📎 " + ", ".join(self.files)), classes="message-files"
            )

    @on(Markdown.LinkClicked)
    def _link(self, event: Markdown.LinkClicked) -> None:
        event.stop()
        self.app.open_url(event.href)

    def _header(self) -> Content:
        who = "🐻 Grizz" if self.is_reply else "You"
        badge = BADGES.get(str(self.message.status), "")
        if badge:
            return Content.assemble(
                (who, "bold"), "  ", (f"· {badge}", "italic $warning")
            )
        return Content.assemble((who, "bold"))

    def set_message(self, message: Message) -> None:
        """Show a newer version of the message (status change)."""
        self.message = message
        self.query_one(".message-header", Static).update(self._header())
        self.set_class(str(message.status) != "complete", "-unfinished")

    @property
    def markdown(self) -> Markdown:
        return self.query_one(Markdown)

    @property
    def shown_source(self) -> str:
        """The Markdown source the body currently displays."""
        if self.is_reply:
            return self.markdown.source
        return self.message.content

    # -- streaming -----------------------------------------------------------
    def start_stream(self) -> None:
        """Start showing a reply as it arrives (see `FLUSH_INTERVAL`)."""
        self._stream = Markdown.get_stream(self.markdown)
        self._pending = []
        self._flusher = self.set_interval(FLUSH_INTERVAL, self._flush)

    async def write(self, fragment: str) -> None:
        """Queue a fragment; it is shown at the next flush (never dropped)."""
        self._pending.append(fragment)

    async def _flush(self) -> None:
        async with self._render_lock:
            if self._pending and self._stream is not None:
                text = "".join(self._pending)
                self._pending.clear()
                await self._stream.write(text)

    async def finish(self, message: Message) -> None:
        """Stop streaming and show `message` (the stored reply) in full."""
        async with self._render_lock:
            # Holding the lock, the timer is not inside a flush; stopping it
            # cannot cancel a mount half-way.
            if self._flusher is not None:
                self._flusher.stop()
                self._flusher = None
        await self._flush()
        async with self._render_lock:
            stream, self._stream = self._stream, None
            if stream is not None:
                await stream.stop()
            self.set_message(message)
            if self.markdown.source != message.content:
                # Streamed text differs from what was stored (a cut-off
                # stream): show the stored text. Otherwise the appended
                # blocks already show it, and re-parsing and remounting a
                # long reply would hold the screen for a second.
                await self.markdown.update(message.content)

    # -- culling -------------------------------------------------------------
    @property
    def culled(self) -> bool:
        """Whether the whole message is culled (far off screen, height kept)."""
        return is_culled(self)

    def cull(self, window: Window) -> bool:
        """Cull this reply if it is outside `window`, or else its blocks that
        are (see `tui.widgets.culling`); False when nothing changed."""
        if not self.is_reply:
            return False
        far = window.far(self)
        if far is None:
            return False
        if far and self._stream is None:
            return set_culled(self, True)
        changed = set_culled(self, False)
        blocks = list(self.markdown.children)
        if self._stream is not None:
            blocks = blocks[:-1]  # the block being appended to
        return cull_all(blocks, window) or changed

    # -- actions -------------------------------------------------------------
    def next_code_block(self) -> str | None:
        """The next code block (cycling), or None when there is none."""
        blocks = code_blocks(self.message.content)
        if not blocks:
            return None
        block = blocks[self._code_index % len(blocks)]
        self._code_index += 1
        return block

    def action_copy(self) -> None:
        self.post_message(CopyRequested(self))

    def action_copy_code(self) -> None:
        self.post_message(CopyCodeRequested(self))

    def action_delete(self) -> None:
        self.post_message(DeleteRequested(self))

    def action_edit(self) -> None:
        self.post_message(EditRequested(self))
