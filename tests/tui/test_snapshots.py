"""Snapshots of the main screens at a fixed size, with cursor blink frozen.

Every value that could change between runs is fixed: the provider label
(a localhost URL, never contacted), note ids, seeded days and text. "Today"
is shown as the word, never the date. Update with `--snapshot-update` after
looking at the SVGs.
"""

from __future__ import annotations

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, TextArea

from grizz_tui.store import memory
from grizz_tui.tui.widgets.notices import ErrorNotice
from tests.tui.helpers import type_and_send, wait_ready, wait_until

SIZE = (100, 30)
LONG_MARKDOWN = """# Planning your week 🐻

Here's a calm plan, one step at a time:

1. **Monday**: pick the *one* thing that matters most.
2. **Tuesday**: a walk after lunch, no phone.
3. **Wednesday**: call your sister back.

> Small steps still count as steps.

```python
def week(days: list[str]) -> str:
    return " → ".join(day[:3] for day in days)
```

| Day | Focus | Energy |
|-----|-------|--------|
| Mon | work  | high   |
| Tue | rest  | medium |
| Wed | family| high   |

- [ ] tidy the desk
- [x] water the plants

That's it. How does that feel?
"""


@pytest.fixture
def local_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    """A provider label that is the same on every run (never contacted)."""
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:11434/v1")
    monkeypatch.setenv("GRIZZ_MODEL", "llama3.2")


async def settle(pilot: Pilot) -> None:
    """Wait for the day, freeze every cursor, let the screen settle."""
    await wait_ready(pilot)
    await pilot.pause()
    freeze(pilot)


def freeze(pilot: Pilot) -> None:
    for widget in pilot.app.screen.query("Input, TextArea"):
        assert isinstance(widget, Input | TextArea)
        widget.cursor_blink = False
    pilot.app.screen.refresh()


def test_chat_with_long_markdown(
    snap_compare, app_factory, local_provider, seed, today
):
    seed(today, ("user", "Can you help me plan my week?"), ("assistant", LONG_MARKDOWN))
    assert snap_compare(app_factory(), run_before=settle, terminal_size=SIZE)


def test_error_notice(snap_compare, app_factory, monkeypatch, today):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("GRIZZ_MODEL", "llama3.2")
    monkeypatch.setenv("GRIZZ_MAX_RETRIES", "0")

    async def fail(pilot: Pilot) -> None:
        await wait_ready(pilot)
        await type_and_send(pilot, "Are you there?")
        app = pilot.app
        await wait_until(pilot, lambda: app.screen.query(ErrorNotice), what="notice")
        await wait_until(pilot, lambda: not app.chat.replying, what="reply end")
        await pilot.pause()
        freeze(pilot)

    assert snap_compare(app_factory(), run_before=fail, terminal_size=SIZE)


def test_setup_screen(snap_compare, app_factory, monkeypatch):
    monkeypatch.setenv("GRIZZ_PROVIDER", "openai")

    async def setup(pilot: Pilot) -> None:
        await wait_ready(pilot)
        await wait_until(pilot, lambda: pilot.app.screen.id == "setup", what="setup")
        await pilot.pause()
        freeze(pilot)

    assert snap_compare(app_factory(), run_before=setup, terminal_size=(100, 36))


def test_memory_screen(snap_compare, app_factory, local_provider, db):
    for n, (title, text) in enumerate(
        [
            ("family", "Sister is called Ana; they talk on Sundays"),
            ("", "Prefers green tea to coffee"),
            ("goals", "Training for a 10k in the spring"),
        ]
    ):
        memory.add_memory(db, text, title=title, memory_id=f"0000000{n}-note")

    async def open_memory(pilot: Pilot) -> None:
        await settle(pilot)
        await pilot.press("ctrl+n")
        await pilot.pause()
        freeze(pilot)

    assert snap_compare(app_factory(), run_before=open_memory, terminal_size=SIZE)


def test_search_screen(snap_compare, app_factory, local_provider, seed, db, today):
    seed(
        "2025-03-03",
        ("user", "I saw a heron by the canal"),
        ("assistant", "Herons are patient birds."),
    )
    seed("2025-04-04", ("user", "The heron was back today!"))
    memory.add_memory(
        db, "Loves watching herons", title="birds", memory_id="00000000-bird"
    )

    async def search(pilot: Pilot) -> None:
        await settle(pilot)
        await pilot.press("ctrl+f")
        await pilot.pause()
        await pilot.press(*"heron")
        await pilot.pause()
        freeze(pilot)

    assert snap_compare(app_factory(), run_before=search, terminal_size=SIZE)


def test_help_screen(snap_compare, app_factory, local_provider):
    async def open_help(pilot: Pilot) -> None:
        await settle(pilot)
        await pilot.press("f1")
        await pilot.pause()

    assert snap_compare(app_factory(), run_before=open_help, terminal_size=(100, 40))


def test_day_calendar(snap_compare, app_factory, local_provider, seed):
    """The calendar on a fixed "today" (2026-12-04) with a November day selected."""
    seed("2026-11-17", ("user", "Walked by the river; the heron was back"))
    for i in range(12):
        seed("2026-11-20", ("user", f"planning {i}"), ("assistant", "ok"))
    seed("2026-12-02", *[("user", f"long day {i}") for i in range(70)])
    seed("2026-12-04", ("user", "Morning! Coffee first, then the garden"))

    async def open_days(pilot: Pilot) -> None:
        from grizz_tui.tui.screens.days import DaysScreen

        await wait_ready(pilot)
        app = pilot.app
        app.push_screen(DaysScreen(app.backend.db, "2026-12-04", "2026-11-17"))
        await pilot.pause()
        freeze(pilot)

    app = app_factory(day="2025-01-01")  # behind the dialog: the same on any date
    assert snap_compare(app, run_before=open_days, terminal_size=SIZE)
