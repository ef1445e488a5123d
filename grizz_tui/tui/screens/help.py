"""The help screen: every key binding, as configured.

Must not import: the store or the core.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

if TYPE_CHECKING:
    from textual.app import ComposeResult

INTRO = (
    "Grizz keeps one conversation per day and notes about you in memory.\n"
    "Keys below come from your config file ([tui.keys] in `grizz config path`)."
)


class HelpScreen(ModalScreen[None]):
    """A table of (keys, what they do, where)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,f1,q", "dismiss", "Close")]

    def __init__(self, rows: list[tuple[str, str, str]]) -> None:
        super().__init__(classes="dialog-screen")
        self.rows = rows

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog -tall -wide"):
            yield Static("🐻 Grizz keys (Esc closes)", classes="dialog-title")
            yield Static(INTRO, classes="dialog-text")
            yield DataTable(id="keys", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("Keys", "Action", "Where")
        for row in self.rows:
            table.add_row(*row)
        table.focus()
