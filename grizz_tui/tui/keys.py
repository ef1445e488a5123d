"""The app's rebindable key bindings, built from `config.TUI_KEYS`.

`TUI_KEYS` declares each rebindable key once (id, default keys, doc) for the
config file; `rebindable()` turns an id into the widget's `Binding` with
those default keys, and `keymap_from()` turns the settings into the keymap
the app applies. Widgets only add the short label the help screen shows.

Must not import: the store, the core, or any screen or widget.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.binding import Binding

from grizz_tui.config import TUI_KEYS

if TYPE_CHECKING:
    from grizz_tui.config import Settings

DEFAULT_KEYS: dict[str, str] = {name: keys for name, keys, _ in TUI_KEYS}
"""{`tui.keys.*` name: default keys}."""
MESSAGE_KEYS = ("copy", "copy_code", "delete", "edit")
"""`tui.keys.*` names bound on a focused message (binding id `message.<name>`)."""


def binding_id(name: str) -> str:
    """The binding id of the `tui.keys.<name>` setting."""
    return f"message.{name}" if name in MESSAGE_KEYS else name


def rebindable(
    name: str, description: str, *, tooltip: str = "", show: bool = True
) -> Binding:
    """The binding of `tui.keys.<name>`: its default keys, action `name`.

    Args:
        name: A `TUI_KEYS` id; it is also the action's name.
        description: The short label shown in the help screen.
        tooltip: A longer description.
        show: Whether a footer would show the binding.
    """
    return Binding(
        DEFAULT_KEYS[name],
        name,
        description,
        show=show,
        id=binding_id(name),
        tooltip=tooltip,
    )


def keymap_from(settings: Settings) -> dict[str, str]:
    """{binding id: keys} from the `tui.keys.*` settings (config file / env)."""
    keymap: dict[str, str] = {}
    for name, keys in settings.tui_keys.items():
        keys = keys.strip()
        if keys:
            keymap[binding_id(name)] = keys
    return keymap
