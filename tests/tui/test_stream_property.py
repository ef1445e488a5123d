"""Property: after a reply has streamed, the screen shows exactly the stored
reply, for replies with code fences, lists, tables, quotes and headings cut
into arbitrary chunks (the fence/append bugs of oterm #308).

"Shows" is checked twice: the widget's Markdown source equals the stored
text, and its rendered blocks (type and text of every block, nested ones
included) equal those of a fresh full render of the stored text.
"""

from __future__ import annotations

import asyncio
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from textual.widget import Widget
from textual.widgets import Markdown
from textual.widgets.markdown import MarkdownBlock

from tests.fakes.openai_server import FakeOpenAI, Text
from tests.tui.helpers import live_messages, type_and_send, wait_ready, wait_reply_done

WORD = st.text(string.ascii_letters + string.digits + "éß🐻", min_size=1, max_size=8)
LINE = st.lists(WORD, min_size=1, max_size=8).map(" ".join)


def _paragraph() -> st.SearchStrategy[str]:
    return st.lists(LINE, min_size=1, max_size=3).map("\n".join)


def _fence() -> st.SearchStrategy[str]:
    body = st.lists(
        st.one_of(LINE, st.just(""), st.just("    x = [1, 2] | {3}")), max_size=6
    )
    lang = st.sampled_from(["", "python", "sh", "json"])
    return st.tuples(lang, body).map(
        lambda t: f"```{t[0]}\n" + "\n".join(t[1]) + "\n```"
    )


def _bullets() -> st.SearchStrategy[str]:
    item = st.tuples(st.booleans(), LINE).map(
        lambda t: ("  - " if t[0] else "- ") + t[1]
    )
    return st.lists(item, min_size=1, max_size=5).map(
        lambda items: (
            "\n".join(["- first", *items[1:]])
            if items[0].startswith("  ")
            else "\n".join(items)
        )
    )


def _numbered() -> st.SearchStrategy[str]:
    return st.lists(LINE, min_size=1, max_size=4).map(
        lambda lines: "\n".join(f"{i}. {line}" for i, line in enumerate(lines, 1))
    )


def _table() -> st.SearchStrategy[str]:
    def build(shape: tuple[int, list[list[str]]]) -> str:
        cols, rows = shape
        head = "| " + " | ".join(f"h{i}" for i in range(cols)) + " |"
        sep = "|" + "---|" * cols
        body = ["| " + " | ".join((row + ["-"] * cols)[:cols]) + " |" for row in rows]
        return "\n".join([head, sep, *body])

    return st.tuples(
        st.integers(1, 4), st.lists(st.lists(WORD, min_size=1, max_size=4), max_size=4)
    ).map(build)


BLOCK = st.one_of(
    _paragraph(),
    _fence(),
    _bullets(),
    _numbered(),
    _table(),
    LINE.map(lambda line: "## " + line),
    LINE.map(lambda line: "> " + line),
)
REPLY = st.lists(BLOCK, min_size=1, max_size=7).map("\n\n".join)


def rendered(markdown: Markdown) -> list[tuple[str, str]]:
    """(block type, its text) for every block, depth first."""
    out: list[tuple[str, str]] = []

    def walk(node: Widget) -> None:
        for child in node.children:
            if isinstance(child, MarkdownBlock):
                code = getattr(child, "code", None)
                text = code if isinstance(code, str) else child._content.plain
                out.append((type(child).__name__, text))
            walk(child)

    walk(markdown)
    return out


@settings(
    max_examples=10,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(reply=REPLY, chunk=st.integers(2, 40))
def test_shown_equals_stored_after_streaming(
    app_factory, provider_env: FakeOpenAI, today, reply, chunk
):
    asyncio.run(_check(app_factory, provider_env, today, reply, chunk))


async def _check(
    app_factory, fake: FakeOpenAI, today: str, reply: str, chunk: int
) -> None:
    fake.enqueue(Text(reply, chunk=chunk))
    app = app_factory()
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_ready(pilot)
        await type_and_send(pilot, "tell me something structured")
        await wait_reply_done(pilot)
        stored = live_messages(app, today)[-1]
        assert str(stored.status) == "complete"
        assert stored.content == reply
        view = app.chat.conversation.last_view("assistant")
        assert view is not None
        assert view.markdown.source == stored.content
        fresh = Markdown(stored.content)
        await app.chat.mount(fresh)
        await pilot.pause()
        assert rendered(view.markdown) == rendered(fresh)
        await fresh.remove()
