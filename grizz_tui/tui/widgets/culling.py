"""Culling: widgets far from the viewport keep their height and skip layout.

Textual lays out the whole widget tree on every refresh that changes layout
(each streamed flush, a key press that grows the composer, a resize), and a
long Markdown reply is hundreds of block widgets. A culled widget has its
height pinned to what it was and its children hidden, so the layout skips
them; unculled, it is laid out again (at the current width). What is on
screen, and a margin around it, is never culled, so nothing visible changes.

Must not import: the app, the store or the core.
"""

from __future__ import annotations

from collections.abc import Iterable

from textual.geometry import Region
from textual.widget import Widget

CULLED = "-culled"
"""The class of a culled widget."""


def set_culled(widget: Widget, culled: bool) -> bool:
    """Pin `widget`'s height and hide its children, or undo that.

    Returns:
        Whether anything changed (a widget never laid out is not culled).
    """
    if culled == widget.has_class(CULLED):
        return False
    if culled:
        height = widget.outer_size.height
        if not height:
            return False
        widget.styles.height = height
    for child in widget.children:
        child.display = not culled
    if not culled:
        widget.styles.height = None  # back to the stylesheet's height
    # A marker only (no stylesheet rule names it): with `update`, Textual would
    # restyle the widget and every descendant (hundreds of Markdown blocks, the
    # slowest key presses while a reply streams).
    widget.set_class(culled, CULLED, update=False)
    return True


def is_culled(widget: Widget) -> bool:
    return widget.has_class(CULLED)


class Window:
    """The visible region of a scrolling container, grown by a margin."""

    def __init__(self, visible: Region, margin: int) -> None:
        self.top = visible.y - margin
        self.bottom = visible.bottom + margin

    def far(self, widget: Widget) -> bool | None:
        """Whether `widget` is outside the window (None: not laid out)."""
        region = widget.region
        if not region.height:
            return None
        return region.bottom < self.top or region.y > self.bottom


def cull_all(widgets: Iterable[Widget], window: Window) -> bool:
    """Cull the widgets outside `window` and uncull those inside it.

    Returns:
        Whether any widget changed.
    """
    changed = False
    for widget in widgets:
        far = window.far(widget)
        if far is not None:
            changed = set_culled(widget, far) or changed
    return changed
