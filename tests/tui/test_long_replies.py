"""Long replies stay cheap: far-off replies and blocks are culled, a finished
stream is not re-parsed, the page is out of the collector's full passes, the
provider is built before the first send. (Speed itself is measured in
bench/long_reply.py.)"""

from __future__ import annotations

import gc
from collections.abc import Callable

from textual.widgets import Markdown
from textual.widgets.markdown import MarkdownBlock

from grizz_tui.tui.app import GrizzApp
from grizz_tui.tui.widgets.culling import is_culled
from tests.fakes.openai_server import FakeOpenAI, Text
from tests.tui.conftest import Seed
from tests.tui.helpers import (
    screen_text,
    type_and_send,
    wait_ready,
    wait_reply_done,
    wait_until,
)


def long_reply(n: int) -> str:
    return "".join(f"Reply {n} paragraph {i}.\n\n" for i in range(60))


def body_shown(app: GrizzApp, index: int) -> bool:
    view = app.chat.conversation.views[index]
    return bool(view.query_one(Markdown).display)


class TestCulling:
    async def test_far_replies_are_culled_and_come_back_when_scrolled_to(
        self,
        app_factory: Callable[..., GrizzApp],
        provider_env: object,
        seed: Seed,
        today: str,
    ) -> None:
        for n in range(4):
            seed(today, ("user", f"question {n}"), ("assistant", long_reply(n)))
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            conversation = app.chat.conversation
            await wait_until(pilot, lambda: len(conversation.views) == 8)
            await wait_until(pilot, lambda: not body_shown(app, 1), what="culled")
            height = conversation.virtual_size.height
            last = conversation.views[7]
            assert body_shown(app, 7)  # the reply on screen is laid out
            assert conversation.views[1].culled
            # ... but of its blocks, those far above the screen are not.
            blocks = list(last.markdown.children)
            assert is_culled(blocks[0]) and not is_culled(blocks[-1])
            conversation.scroll_home(animate=False)
            await wait_until(pilot, lambda: body_shown(app, 1), what="shown again")
            await wait_until(pilot, lambda: "Reply 0 paragraph 3." in screen_text(app))
            assert "question 0" in screen_text(app)
            await wait_until(pilot, lambda: not body_shown(app, 7), what="end culled")
            # Culled replies keep their height: the page does not jump.
            assert conversation.virtual_size.height == height


class TestFinishing:
    async def test_a_finished_stream_keeps_its_blocks(
        self, app_factory: Callable[..., GrizzApp], provider_env: FakeOpenAI
    ) -> None:
        provider_env.enqueue(Text(long_reply(0), chunk=40, delay=0.002))
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            await type_and_send(pilot, "tell me a lot")
            conversation = app.chat.conversation
            await wait_until(
                pilot,
                lambda: (
                    (view := conversation.last_view("assistant")) is not None
                    and bool(view.query(MarkdownBlock))
                ),
                what="the first block",
            )
            view = conversation.last_view("assistant")
            assert view is not None
            first = view.query(MarkdownBlock).first()
            await wait_reply_done(pilot)
            assert view.shown_source == view.message.content == long_reply(0)
            # Not re-parsed and remounted at the end (it held the screen).
            assert first.is_attached


class TestCollector:
    async def test_the_page_is_out_of_full_collections_while_the_app_runs(
        self, app_factory: Callable[..., GrizzApp], provider_env: FakeOpenAI
    ) -> None:
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            await type_and_send(pilot, "hello")
            await wait_reply_done(pilot)
            assert gc.get_freeze_count() > 0
        assert gc.get_freeze_count() == 0  # handed back when the app ends


class TestProvider:
    async def test_the_provider_is_built_before_the_first_send(
        self, app_factory: Callable[..., GrizzApp], provider_env: FakeOpenAI
    ) -> None:
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            # Building it on the send (a TLS context) stalled the screen.
            await wait_until(pilot, lambda: app.backend._provider is not None)
            assert provider_env.requests == []


class TestLayoutStaysCached:
    async def test_culling_does_not_restyle_the_reply(
        self,
        app_factory: Callable[..., GrizzApp],
        provider_env: object,
        seed: Seed,
        today: str,
    ) -> None:
        """Culling a reply is a marker class: restyling its hundreds of blocks
        (what Textual does on a class change) held the screen while streaming."""
        from grizz_tui.tui.widgets.culling import set_culled

        seed(today, ("user", "question"), ("assistant", long_reply(0)))
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            conversation = app.chat.conversation
            await wait_until(pilot, lambda: len(conversation.views) == 2)
            view = conversation.views[1]
            await wait_until(pilot, lambda: bool(view.outer_size.height))
            restyled: list[object] = []
            update_styles = app.update_styles

            def spy(node: object, animate: bool = True) -> None:
                restyled.append(node)
                update_styles(node, animate)  # type: ignore[arg-type]

            app.update_styles = spy  # type: ignore[method-assign]
            set_culled(view, True)
            set_culled(view, False)
            assert view not in restyled

    async def test_a_growing_reply_keeps_its_blocks_arranged(
        self,
        app_factory: Callable[..., GrizzApp],
        provider_env: object,
        seed: Seed,
        today: str,
    ) -> None:
        """The blocks of a reply are placed the same whatever its height, so a
        streaming reply (taller on each flush) reuses the arrangement."""
        from textual.geometry import Size

        seed(today, ("user", "question"), ("assistant", long_reply(0)))
        app = app_factory()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_ready(pilot)
            conversation = app.chat.conversation
            await wait_until(pilot, lambda: len(conversation.views) == 2)
            markdown = conversation.views[1].markdown
            await wait_until(pilot, lambda: bool(markdown.children))
            short = markdown.arrange(Size(90, 100))
            assert markdown.arrange(Size(90, 140)) is short
