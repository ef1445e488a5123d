"""The memory screen: Grizz's notes about the user.

List, search, add, edit and delete (tombstoned, so deletes sync) notes.

Must not import: the core.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Input, OptionList, Static, TextArea
from textual.widgets.option_list import Option

if TYPE_CHECKING:
    from textual.app import ComposeResult

    from grizz_core.domain import MemoryItem
    from grizz_tui.store.db import Database


def note_label(item: MemoryItem) -> Content:
    title = (item.title + ": ") if item.title else ""
    source = " (Grizz)" if item.properties.get("source") == "grizz" else ""
    return Content.assemble(
        (item.id[:8], "dim"),
        "  ",
        (title, "bold"),
        item.content,
        (source, "dim italic"),
    )


class NoteEditor(ModalScreen["tuple[str, str] | None"]):
    """Edit one note's title and text; Ctrl+S saves, Esc cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss(None)", "Cancel"),
        Binding("ctrl+s", "save", "Save"),
    ]

    def __init__(self, title: str = "", content: str = "") -> None:
        super().__init__(classes="dialog-screen")
        self.note_title = title
        self.note_content = content

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog -wide"):
            yield Static("A note Grizz keeps about you (Ctrl+S saves, Esc cancels)")
            yield Input(
                self.note_title, placeholder="title (optional)", id="note-title"
            )
            yield TextArea(self.note_content, id="note-content", soft_wrap=True)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save", id="save", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        """A new note starts at the top (its title); an edit in the text, with
        the cursor after it, where more words go."""
        if not self.note_content:
            self.query_one("#note-title").focus()
            return
        body = self.query_one("#note-content", TextArea)
        body.focus()
        body.move_cursor(body.document.end)

    def action_save(self) -> None:
        content = self.query_one("#note-content", TextArea).text.strip()
        if not content:
            self.notify("A note needs some text.", severity="warning")
            return
        self.dismiss((self.query_one("#note-title", Input).value.strip(), content))

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.action_save()
        else:
            self.dismiss(None)


class MemoryScreen(Screen[None]):
    """All live notes, newest first, filtered by the search box."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("a", "add", "Add", id="memory.add"),
        Binding("enter,e", "edit", "Edit", id="memory.edit", show=False),
        Binding("d,delete", "delete", "Delete", id="memory.delete"),
        Binding("slash", "find", "Search", id="memory.find"),
    ]

    def __init__(self, db: Database, *, focus_id: str | None = None) -> None:
        super().__init__(id="memory")
        self.db = db
        self.focus_id = focus_id
        self.items: list[MemoryItem] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="memory-body"):
            yield Static(
                "🐻 What Grizz remembers about you"
                "  (a add · e edit · d delete · / search · Esc back)",
                classes="title",
            )
            yield Input(placeholder="search notes…", id="memory-query")
            yield OptionList(id="notes")
            yield Static("", id="memory-count")

    def on_mount(self) -> None:
        self.refresh_notes()
        notes = self.query_one(OptionList)
        notes.focus()
        if self.focus_id:
            index = next(
                (i for i, m in enumerate(self.items) if m.id == self.focus_id), 0
            )
            notes.highlighted = index

    def refresh_notes(self, query: str = "") -> None:
        from grizz_tui.store.memory import list_memory, search_memory

        self.items = (
            search_memory(self.db, query, limit=200)
            if query.strip()
            else list_memory(self.db)
        )
        notes = self.query_one(OptionList)
        notes.clear_options()
        notes.add_options(Option(note_label(m), id=m.id) for m in self.items)
        if self.items:
            notes.highlighted = 0
        empty = "No notes yet. Press a to add one, or tell Grizz something to remember."
        self.query_one("#memory-count", Static).update(
            (f"{len(self.items)} note" + ("" if len(self.items) == 1 else "s"))
            if self.items
            else (empty if not query else "No note matches.")
        )

    @on(Input.Changed, "#memory-query")
    def _filter(self, event: Input.Changed) -> None:
        self.refresh_notes(event.value)

    @on(Input.Submitted, "#memory-query")
    def _to_list(self) -> None:
        self.query_one(OptionList).focus()

    @on(OptionList.OptionSelected)
    def _selected(self) -> None:
        self.action_edit()

    def action_find(self) -> None:
        self.query_one("#memory-query").focus()

    @property
    def current(self) -> MemoryItem | None:
        index = self.query_one(OptionList).highlighted
        return (
            self.items[index] if index is not None and index < len(self.items) else None
        )

    def action_add(self) -> None:
        from grizz_tui.store.memory import add_memory

        def saved(result: tuple[str, str] | None) -> None:
            if result:
                add_memory(
                    self.db, result[1], title=result[0], properties={"source": "user"}
                )
                self.notify("Note saved.")
                self._reload()

        self.app.push_screen(NoteEditor(), saved)

    def action_edit(self) -> None:
        from grizz_tui.store.memory import update_memory

        item = self.current
        if item is None:
            return

        def saved(result: tuple[str, str] | None) -> None:
            if result:
                update_memory(self.db, item.id, title=result[0], content=result[1])
                self.notify("Note updated.")
                self._reload()

        self.app.push_screen(NoteEditor(item.title, item.content), saved)

    def action_delete(self) -> None:
        from grizz_tui.store.memory import delete_memory
        from grizz_tui.tui.screens.confirm import ConfirmScreen

        item = self.current
        if item is None:
            return

        def done(yes: bool | None) -> None:
            if yes:
                delete_memory(self.db, item.id)
                self.notify("Note deleted.")
                self._reload()

        self.app.push_screen(
            ConfirmScreen(f"Delete this note?\n\n{item.content[:200]}", "Delete"), done
        )

    def _reload(self) -> None:
        self.refresh_notes(self.query_one("#memory-query", Input).value)
