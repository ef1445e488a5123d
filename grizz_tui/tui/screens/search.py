"""Search every day and every memory note (the store's FTS5 index).

Choosing a message opens its day scrolled to it; choosing a note opens the
memory screen on it. Results update as you type.

Must not import: the core.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

if TYPE_CHECKING:
    from textual.app import ComposeResult

    from grizz_core.domain import SearchHit
    from grizz_tui.store.db import Database

RESULTS = 40


def hit_label(hit: SearchHit) -> Content:
    """`2025-03-03 You  …snippet with [match]…` or `Note  title: …snippet…`."""
    from grizz_tui.store.search import MARK_END, MARK_START

    snippet = " ".join(hit.snippet.split())
    parts: list[tuple[str, str] | str] = []
    for i, piece in enumerate(snippet.replace(MARK_END, MARK_START).split(MARK_START)):
        parts.append((piece, "bold $accent") if i % 2 else piece)
    if hit.kind == "memory":
        head = ("Note ", "bold $success")
        title = f"{hit.title}: " if hit.title else ""
        return Content.assemble(head, " ", title, *parts)
    who = "Grizz" if hit.role == "assistant" else "You"
    return Content.assemble(
        (hit.day, "bold"), " ", (f"{who:<5}", "italic"), " ", *parts
    )


class SearchScreen(Screen["SearchHit | None"]):
    """A query box and the matching messages and notes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss(None)", "Back"),
        Binding("down", "focus_results", "Results", show=False),
    ]

    def __init__(self, db: Database) -> None:
        super().__init__(id="search")
        self.db = db
        self.hits: list[SearchHit] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="search-body"):
            yield Static(
                "🔎 Search all days and memory (Enter opens · Esc back)",
                classes="title",
            )
            yield Input(placeholder="words to find…", id="query")
            yield OptionList(id="results")
            yield Static("", id="search-count")

    def on_mount(self) -> None:
        self.query_one("#query").focus()

    @on(Input.Changed, "#query")
    def run_search(self, event: Input.Changed) -> None:
        from grizz_tui.store.search import search

        self.hits = (
            search(self.db, event.value, limit=RESULTS) if event.value.strip() else []
        )
        total = self._total(event.value)
        results = self.query_one(OptionList)
        results.clear_options()
        results.add_options(
            Option(hit_label(h), id=str(i)) for i, h in enumerate(self.hits)
        )
        count = self.query_one("#search-count", Static)
        if event.value.strip():
            count.update(self._count_line(total) if self.hits else "Nothing found.")
        else:
            count.update("")

    def _total(self, query: str) -> int:
        """All the matches: counted only when a list of hits was cut at RESULTS."""
        from grizz_tui.store.search import count

        notes = sum(1 for h in self.hits if h.kind == "memory")
        if notes < RESULTS and len(self.hits) - notes < RESULTS:
            return len(self.hits)
        return count(self.db, query)

    def _count_line(self, total: int) -> str:
        from grizz_tui.store.search import COUNT_CAP

        shown = len(self.hits)
        if total <= shown:
            return f"{shown:,} found"
        more = "+" if total >= COUNT_CAP else ""
        return f"{total:,}{more} found · showing {shown}"

    @on(Input.Submitted, "#query")
    def first_result(self) -> None:
        if self.hits:
            self.dismiss(self.hits[0])

    def action_focus_results(self) -> None:
        results = self.query_one(OptionList)
        if self.hits:
            results.focus()
            results.highlighted = 0

    @on(OptionList.OptionSelected)
    def chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.hits[int(event.option.id or 0)])
