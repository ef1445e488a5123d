"""`GrizzApp`: the thin Textual app that hosts the screens, and `make_app`.

The app receives its collaborators (a `Backend` holding settings, store and
session) through `make_app`, which the tests reuse. It applies the theme and
key bindings from the config file, persists theme changes, and offers every
action in the command palette.

Must not import: httpx, the store or the core at module level.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from textual.app import App, SystemCommand
from textual.binding import Binding

from grizz_core.errors import GrizzError
from grizz_tui.config import Settings, load_settings
from grizz_tui.tui.backend import Backend
from grizz_tui.tui.keys import keymap_from
from grizz_tui.tui.screens.chat import ChatScreen

if TYPE_CHECKING:
    from textual.screen import Screen

__all__ = ["GrizzApp", "keymap_from", "make_app"]


class GrizzApp(App[int]):
    """Grizz in the terminal: today's conversation, memory, search, days.

    It is the `ChatHost` of its chat screen (setup, memory, help).
    """

    CSS_PATH = "grizz.tcss"
    TITLE = "Grizz"

    def __init__(
        self,
        backend: Backend,
        *,
        day: str | None = None,
        animate: bool = True,
        on_first_frame: Callable[[GrizzApp], None] | None = None,
    ) -> None:
        super().__init__()
        self.backend = backend
        self.start_day = day
        self.motion = animate
        """False in tests and snapshots: no cursor blink, no moving dots."""
        self.on_first_frame = on_first_frame
        self._first_frame_seen = False
        if not animate:
            self.animation_level = "none"

    @property
    def settings(self) -> Settings:
        return self.backend.settings

    @property
    def chat(self) -> ChatScreen:
        """The chat screen (the bottom of the screen stack)."""
        return self._chat

    def get_default_screen(self) -> ChatScreen:
        self._chat = ChatScreen(self, day=self.start_day)
        return self._chat

    def on_mount(self) -> None:
        if self.settings.tui_theme in self.available_themes:
            self.theme = self.settings.tui_theme
        self.theme_changed_signal.subscribe(self, self._save_theme)
        self.set_keymap(keymap_from(self.settings))

    def first_frame_shown(self) -> None:
        if not self._first_frame_seen:
            self._first_frame_seen = True
            if self.on_first_frame is not None:
                self.on_first_frame(self)

    def _save_theme(self, theme: object) -> None:
        from grizz_tui.config import set_value

        name = getattr(theme, "name", str(theme))
        if name == self.settings.tui_theme:
            return
        try:
            set_value("tui.theme", name)
        except GrizzError as exc:
            self.notify(str(exc), title="Theme not saved", severity="warning")

    async def on_unmount(self) -> None:
        await self.backend.aclose()

    # -- screens ---------------------------------------------------------------
    def open_setup(self, *, first_run: bool) -> None:
        from grizz_tui.tui.screens.setup import SetupScreen

        if any(s.id == "setup" for s in self.screen_stack):
            return

        def saved(ok: bool | None) -> None:
            if ok:
                self.run_worker(
                    self._reload_settings(), group="settings", exit_on_error=False
                )

        screen = SetupScreen(self.settings, first_run=first_run)
        self.push_screen(screen, saved)

    async def _reload_settings(self) -> None:
        try:
            await self.backend.reload()
        except GrizzError as exc:
            self.notify(str(exc), title="Settings", severity="error")
            return
        self.chat.settings_reloaded()

    def open_memory(self, *, focus_id: str | None = None) -> None:
        from grizz_tui.tui.screens.memory import MemoryScreen

        self.push_screen(MemoryScreen(self.backend.db, focus_id=focus_id))

    # -- palette and help ------------------------------------------------------
    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        chat = self.chat
        if screen is chat:
            yield SystemCommand(
                "Stop reply",
                "Stop Grizz's reply; the partial text is kept",
                chat.action_cancel,
            )
            yield SystemCommand(
                "Regenerate", "Answer your last message again", chat.action_regenerate
            )
            yield SystemCommand(
                "Edit last message",
                "Change your last message and resend it",
                chat.action_edit_last,
            )
            yield SystemCommand(
                "Copy last reply",
                "Copy Grizz's last reply (OSC 52)",
                chat.action_copy_last,
            )
            yield SystemCommand(
                "Copy last code block",
                "Copy a code block of the last reply",
                lambda: chat.action_copy_last(code=True),
            )
            yield SystemCommand(
                "Attach image",
                "Send a picture with your next message",
                chat.action_attach,
            )
            yield SystemCommand(
                "Undo memory change",
                "Undo what Grizz just remembered or forgot",
                chat.action_undo_memory,
            )
            yield SystemCommand("Go to day", "Read an earlier day", chat.action_days)
            yield SystemCommand(
                "Today", "Back to today's conversation", chat.show_today
            )
            yield SystemCommand(
                "Search", "Search all days and memory", chat.action_search
            )
            yield SystemCommand(
                "Memory", "See and edit what Grizz remembers", chat.action_memory
            )
            if chat.link.active:
                yield SystemCommand(
                    "Reconnect",
                    "Try the sync server again now",
                    chat.link.reconnect_now,
                )
        yield SystemCommand(
            "Settings",
            "Provider, model and API key",
            lambda: self.open_setup(first_run=False),
        )
        yield SystemCommand(
            "Choose model",
            "The endpoint's models; the choice is saved",
            self.choose_model,
        )
        yield SystemCommand("Help", "All key bindings", self.show_help)
        yield from super().get_system_commands(screen)

    def choose_model(self) -> None:
        """The endpoint's models; the one chosen is saved (`config set model`)."""
        from grizz_tui.tui.screens.models import ModelScreen, save_model

        def chosen(model: str | None) -> None:
            if not model:
                return
            try:
                note = save_model(model)
            except GrizzError as exc:
                self.notify(str(exc), title="Model", severity="error")
                return
            self.notify(note, title="Model")
            self.run_worker(
                self._reload_settings(), group="settings", exit_on_error=False
            )

        self.push_screen(ModelScreen(self.settings), chosen)

    def show_help(self) -> None:
        from grizz_tui.tui.screens.help import HelpScreen

        self.push_screen(HelpScreen(self.binding_rows()))

    def binding_rows(self) -> list[tuple[str, str, str]]:
        """(keys, description, where) for every binding, as remapped."""
        from grizz_tui.tui.screens.memory import MemoryScreen
        from grizz_tui.tui.widgets.message_view import MessageView

        rows = [
            ("enter", "Send your message", "composer"),
            (self.settings.tui_newline_key, "New line in your message", "composer"),
            ("up", "Edit your last message (composer empty)", "composer"),
            ("ctrl+p", "Command palette: every action", "everywhere"),
            ("ctrl+q", "Quit", "everywhere"),
        ]
        for where, bindings in (
            ("chat", ChatScreen.BINDINGS),
            ("focused message", MessageView.BINDINGS),
            ("memory", MemoryScreen.BINDINGS),
        ):
            for binding in bindings:
                if isinstance(binding, Binding):
                    key = self._keymap.get(binding.id or "", binding.key)
                    rows.append((key, binding.description or binding.action, where))
        return rows


def make_app(
    settings: Settings | None = None,
    *,
    db_path: Path | None = None,
    day: str | None = None,
    animate: bool = True,
    on_first_frame: Callable[[GrizzApp], None] | None = None,
) -> GrizzApp:
    """Build the app with its collaborators; `grizz` and the tests use this.

    Raises:
        ConfigError: the config file or environment is invalid.
    """
    backend = Backend(settings or load_settings(), db_path=db_path)
    return GrizzApp(backend, day=day, animate=animate, on_first_frame=on_first_frame)
