"""Streaming a reply on the chat screen: a mixin of `ChatScreen`.

`ChatSession.send()` (or `respond()` for regenerate/retry) runs in an
exclusive worker; its events are turned into messages on screen. Cancelling
the worker (Esc) makes the session store the partial reply as `interrupted`;
a provider error becomes an in-chat notice with Retry.

With the built-in local model, the model is loaded first (or was preloaded
after start-up): its worker thread reports progress as `ModelLoading`
messages, which the typing indicator shows ("Loading the local model… 40%").
A failed load (extra missing, corrupt file, not enough memory) keeps the
user's message and shows the reason as the usual error notice.

Must not import: httpx, the store or the core at module level.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from textual import work

from grizz_core.errors import ConfigError, GrizzError
from grizz_tui.tui.messages import ModelLoading, ReplyEnded

if TYPE_CHECKING:
    from grizz_core.domain import Attachment, Message
    from grizz_tui.tui.screens.chat import ChatScreen
    from grizz_tui.tui.widgets.message_view import MessageView


@dataclass
class ReplyJob:
    """What the reply worker should do: send new text, or answer a stored message."""

    text: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    user_message: Message | None = None


class ChatReplies:
    """Sending and streaming for `ChatScreen`."""

    def start_reply(self: ChatScreen, job: ReplyJob) -> None:  # type: ignore[misc]
        for notice in self.query(".notice.-error"):
            notice.remove()
        self.reply_worker = self.reply(job)

    @work(exclusive=True, group="reply", exit_on_error=False)
    async def reply(self: ChatScreen, job: ReplyJob) -> None:  # type: ignore[misc]
        """Stream one reply into the conversation."""
        try:
            session = self.grizz.backend.session()
            await self.load_model()
        except GrizzError as exc:
            if job.user_message is None:
                await self._store_unsent(job)
            await self.show_error(str(exc))
            if isinstance(exc, ConfigError):
                self.grizz.open_setup(first_run=False)
            return
        if job.user_message is not None:
            events = session.respond(job.user_message)
        else:
            events = session.send(job.text, attachments=job.attachments)
        await self._consume(events, job)

    @work(group="model", exit_on_error=False)
    async def preload_model(self: ChatScreen) -> None:  # type: ignore[misc]
        """Load the local model in the background once the day is on screen."""
        try:
            await self.load_model()
        except GrizzError as exc:
            await self.show_error(str(exc), retry=False)

    async def load_model(self: ChatScreen) -> None:  # type: ignore[misc]
        """Load the local model (if it is the provider), showing its progress.

        Raises:
            GrizzError: the model cannot be loaded (the reason is user-facing).
        """
        backend = self.grizz.backend
        if not backend.model_pending():
            return

        def progress(text: str, fraction: float | None) -> None:  # a worker thread
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self.post_message(ModelLoading(loading_text(text, fraction)))

        async def load() -> None:
            try:
                await backend.load_model(progress)
            finally:
                # Queued after every progress message, so it is handled last.
                self.post_message(ModelLoading(""))

        self.post_message(ModelLoading(loading_text("Loading the local model", None)))
        # Shielded: stopping the reply (Esc) does not throw away a half-done load.
        await asyncio.shield(load())

    def on_model_loading(self: ChatScreen, message: ModelLoading) -> None:  # type: ignore[misc]
        self.typing.model_note = message.text

    async def _store_unsent(self: ChatScreen, job: ReplyJob) -> None:  # type: ignore[misc]
        """Keep a message that could not be sent (no provider yet): never lose it."""
        from grizz_core.days import tz_name
        from grizz_core.domain import Role

        store = self.grizz.backend.store
        conversation_id = await store.ensure_day(
            self.today, tz_name(self.grizz.settings.timezone)
        )
        message = await store.add_message(
            conversation_id=conversation_id,
            role=Role.USER,
            content=job.text,
            attachments=job.attachments,
        )
        await self.conversation.add(message, files=[a.name for a in job.attachments])

    async def _consume(self: ChatScreen, events: Any, job: ReplyJob) -> None:  # type: ignore[misc]
        from grizz_core.companion.session import (
            ReplyFinished,
            ReplyStarted,
            ToolUsed,
            UserMessageStored,
        )
        from grizz_core.providers.base import TextDelta

        view: MessageView | None = None
        error = ""
        self._begin_typing()
        try:
            async for event in events:
                if isinstance(event, TextDelta):
                    if view is not None:
                        await view.write(event.text)
                elif isinstance(event, UserMessageStored):
                    files = [a.name for a in job.attachments]
                    await self.conversation.add(event.message, files=files)
                    self.conversation.anchor()
                elif isinstance(event, ReplyStarted):
                    view = await self._start_reply_view(event.message_id)
                elif isinstance(event, ToolUsed):
                    await self.memory_changed(event)
                elif isinstance(event, ReplyFinished):
                    self.status.show_usage(event.usage)
                    self.status.elapsed = f"{event.elapsed:.1f} s"
        except GrizzError as exc:
            error = str(exc)
        finally:
            await events.aclose()
            self._end_typing()
            if view is not None:
                final = await self.grizz.backend.store.get_message(view.message.id)
                if final is not None:
                    await view.finish(final)
                    self.post_message(ReplyEnded(final, error))
        if error:
            await self.show_error(error)

    async def _start_reply_view(self: ChatScreen, reply_id: str) -> MessageView | None:  # type: ignore[misc]
        message = await self.grizz.backend.store.get_message(reply_id)
        if message is None:
            return None
        view = await self.conversation.add(message)
        view.start_stream()
        self.conversation.anchor()
        return view

    def _begin_typing(self: ChatScreen) -> None:  # type: ignore[misc]
        self.typing.active = True
        self._started = time.monotonic()
        self.status.elapsed = ""
        if self.grizz.motion:
            self._clock = self.set_interval(0.2, self._tick)

    def _tick(self: ChatScreen) -> None:  # type: ignore[misc]
        self.status.elapsed = f"{time.monotonic() - self._started:.1f} s"

    def _end_typing(self: ChatScreen) -> None:  # type: ignore[misc]
        self.typing.active = False
        clock, self._clock = self._clock, None
        if clock is not None:
            clock.stop()

    async def show_error(  # type: ignore[misc]
        self: ChatScreen, reason: str, *, retry: bool = True
    ) -> None:
        """An in-chat notice (with Retry when it can help), never a crash."""
        notices = self.query_one("#notices")
        from grizz_tui.tui.widgets.notices import ErrorNotice

        await notices.query(".notice.-error").remove()
        await notices.mount(ErrorNotice(reason, retry=retry))
        self.app.bell()


def loading_text(text: str, fraction: float | None) -> str:
    """'Loading the local model… 40%' (no percentage when it is unknown)."""
    if fraction is None:
        return f"{text}…"
    return f"{text}… {round(min(max(fraction, 0.0), 1.0) * 100)}%"
