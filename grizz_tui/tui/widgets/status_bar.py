"""The status bar under the composer: who answers, tokens, time, key hints.

Must not import: the store or the core.
"""

from __future__ import annotations

from textual.content import Content
from textual.reactive import reactive
from textual.widgets import Static


class StatusBar(Static):
    """`model @ host · ↑in ↓out tokens · 1.2 s` on the left, key hints on the right."""

    provider: reactive[str] = reactive("")
    """`model @ host`, from the settings."""
    usage: reactive[str] = reactive("")
    """Token counts of the last reply (`↑120 ↓48`)."""
    elapsed: reactive[str] = reactive("")
    """How long the last reply took, or the running time of the current one."""
    hints: reactive[str] = reactive("")
    """Key hints (`Enter send · ctrl+j newline · F1 help`)."""

    def render(self) -> Content:
        parts = [p for p in (self.provider, self.usage, self.elapsed) if p]
        left = Content(" · ".join(parts))
        return Content.assemble(left, "   ", (self.hints, "dim"))

    def show_usage(self, usage: dict[str, int]) -> None:
        sent = usage.get("prompt_tokens")
        got = usage.get("completion_tokens")
        if sent is None and got is None:
            self.usage = ""
            return
        self.usage = f"↑{sent or 0} ↓{got or 0} tokens"
