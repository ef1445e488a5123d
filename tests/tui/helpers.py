"""Helpers for the app's pilot tests: waiting on conditions, reading the screen."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from textual import events
from textual.pilot import Pilot

from grizz_core.domain import Message
from grizz_tui.tui.app import GrizzApp


async def wait_until(
    pilot: Pilot,
    condition: Callable[[], object],
    *,
    timeout: float = 10.0,
    what: str = "",
) -> None:
    """Pause until `condition()` is truthy, or fail after `timeout` seconds.

    A single `pilot.pause()` is not enough while a worker streams over HTTP
    (oterm's suite has the same helper for the same reason), and `pilot.pause`
    itself waits for the screen to go quiet, which it never does mid-stream,
    so this sleeps plainly.
    """
    steps = int(timeout / 0.02)
    for _ in range(steps):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what or condition}")


async def wait_ready(pilot: Pilot) -> GrizzApp:
    """Wait until the store is open and the day is on screen."""
    app = pilot.app
    assert isinstance(app, GrizzApp)
    await wait_until(
        pilot, lambda: app.chat.day and app.chat.conversation.is_mounted, what="day"
    )
    await wait_until(pilot, lambda: not _loading(app), what="start-up worker")
    return app


def _loading(app: GrizzApp) -> bool:
    return any(w.group == "startup" and w.is_running for w in app.chat.workers)


async def wait_reply_done(pilot: Pilot, *, timeout: float = 10.0) -> None:
    app = pilot.app
    assert isinstance(app, GrizzApp)
    await wait_until(
        pilot,
        lambda: app.chat.reply_worker is not None and app.chat.reply_worker.is_finished,
        timeout=timeout,
        what="reply to finish",
    )
    await pilot.pause()


async def type_and_send(pilot: Pilot, text: str) -> None:
    """Type `text` into the composer and press Enter there.

    The Enter key event goes straight to the composer rather than through
    `pilot.press`, which waits for the app to go idle, i.e. for the whole
    streamed reply, and would hide everything that happens during it.
    """
    app = pilot.app
    assert isinstance(app, GrizzApp)
    composer = app.chat.composer
    composer.focus()
    composer.insert(text)
    composer.post_message(events.Key("enter", None))
    await asyncio.sleep(0)


def shown(app: GrizzApp) -> list[tuple[str, str, str]]:
    """(role, status, displayed source) of each message on the chat screen."""
    return [
        (str(v.message.role), str(v.message.status), v.shown_source)
        for v in app.chat.conversation.views
    ]


async def wait_shown(pilot: Pilot, text: str, timeout: float = 10.0) -> None:
    """Wait until `text` is on screen: a mount or an update is drawn on the
    next refresh, so reading the screen right after an action can be stale."""
    app = pilot.app
    assert isinstance(app, GrizzApp)
    await wait_until(
        pilot, lambda: text in screen_text(app), timeout=timeout, what=repr(text)
    )


def screen_text(app: GrizzApp) -> str:
    """The current screen as plain text (for asserting on what a user sees)."""
    strips = app.screen._compositor.render_strips()
    return "\n".join(strip.text.rstrip() for strip in strips)


def live_messages(app: GrizzApp, day: str) -> list[Message]:
    from grizz_tui.store import conversations as conv

    found = conv.get_conversation(app.backend.db, day)
    return conv.messages_of(app.backend.db, found.id) if found else []
