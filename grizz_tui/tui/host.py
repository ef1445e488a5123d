"""`ChatHost`: what the chat screen needs from the app that hosts it.

`GrizzApp` implements it and passes itself to `ChatScreen`, so the screens
never import the app (which imports them).

Must not import: the app, the screens, the store or the core.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from grizz_tui.tui.backend import Backend


class ChatHost(Protocol):
    """The app's services for the chat screen."""

    @property
    def backend(self) -> Backend:
        """Settings, database and session of this run."""
        ...

    @property
    def motion(self) -> bool:
        """False in tests and snapshots: no cursor blink, no moving dots."""
        ...

    def first_frame_shown(self) -> None:
        """The first frame is on screen (start-up probe)."""
        ...

    def open_setup(self, *, first_run: bool) -> None:
        """Open provider setup (once)."""
        ...

    def open_memory(self, *, focus_id: str | None = None) -> None:
        """Open the memory screen, optionally on one note."""
        ...

    def show_help(self) -> None:
        """Open the help screen (every key binding, as remapped)."""
        ...
