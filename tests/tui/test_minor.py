"""Small defects of the app (issue 13, "Minor"); each test failed before its fix."""

from __future__ import annotations

from textual.widgets import OptionList, Static

from grizz_tui.tui.screens.search import SearchScreen
from tests.tui.helpers import wait_ready, wait_shown, wait_until


class TestSearchCount:
    async def test_the_count_is_every_match_and_brackets_survive(
        self, app_factory, provider_env, seed
    ):
        seed("2025-03-03", *[("user", f"heron number {i}") for i in range(120)])
        seed("2025-03-04", ("user", "a list [heron] and x[0]"))
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            await pilot.press("ctrl+f")
            await wait_until(pilot, lambda: isinstance(app.screen, SearchScreen))
            await pilot.press(*"heron")
            await wait_shown(pilot, "121 found · showing 40")
            count = app.screen.query_one("#search-count", Static)
            assert "121 found" in str(count.render())
            first = app.screen.query_one(OptionList).get_option_at_index(0)
            assert "[heron] and x[0]" in str(first.prompt)
