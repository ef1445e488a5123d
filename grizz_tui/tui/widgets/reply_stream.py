"""`ReplyStream`: streams Grizz's replies into the conversation.

It owns the reply worker: `ChatSession.send()` (or `respond()` for
regenerate/retry) runs in an exclusive worker, and its events become messages
in the `Conversation` it is given; everything else is posted up as facts
(`Started`, `Finished`, `MemoryChanged`, `Stopped`, `Failed`, and the
app-level `ReplyEnded`). Cancelling the worker (Esc) makes the session store
the partial reply as `interrupted`; a provider error becomes `Failed`, which
the screen shows as an in-chat notice with Retry.

With the built-in local model, the model is loaded first (or was preloaded
after start-up): its worker thread reports progress as `ModelLoading`
messages, which the typing indicator shows ("Loading the local model… 40%").
A failed load (extra missing, corrupt file, not enough memory) keeps the
user's message and becomes `Failed` with the reason.

It draws nothing (`display: none`).

Must not import: httpx, the store or the core at module level (only
`grizz_core.errors`).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from textual import on, work
from textual.message import Message
from textual.widget import Widget
from textual.worker import Worker, WorkerState

from grizz_core.errors import ConfigError, GrizzError
from grizz_tui.tui.messages import ModelLoading, ReplyEnded

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from grizz_core.companion.session import SessionEvent, ToolUsed
    from grizz_core.domain import Attachment
    from grizz_core.domain import Message as StoredMessage
    from grizz_tui.tui.backend import Backend
    from grizz_tui.tui.widgets.conversation import Conversation
    from grizz_tui.tui.widgets.message_view import MessageView


@dataclass
class ReplyJob:
    """What the reply worker should do: send new text, or answer a stored message."""

    text: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    user_message: StoredMessage | None = None
    """Answer this stored message instead of sending `text` (regenerate, retry)."""
    day: str = ""
    """Today: where `text` is kept if it cannot be sent (no provider yet)."""


class ReplyStream(Widget):
    """The reply worker of the chat screen, and the facts it reports."""

    DEFAULT_CSS = """
    ReplyStream {
        display: none;
    }
    """

    class Started(Message):
        """A reply began streaming: Grizz is typing."""

    class Finished(Message):
        """The reply is complete: its token usage and how long it took."""

        def __init__(self, usage: dict[str, int], elapsed: float) -> None:
            super().__init__()
            self.usage = usage
            self.elapsed = elapsed

    class MemoryChanged(Message):
        """Grizz remembered or forgot a note while replying."""

        def __init__(self, tool: str, summary: str, memory_id: str) -> None:
            super().__init__()
            self.tool = tool
            self.summary = summary
            self.memory_id = memory_id

    class Stopped(Message):
        """The reply stopped streaming, however it ended."""

    class Failed(Message):
        """A reply or the model's load failed; `reason` is user-facing."""

        def __init__(
            self, reason: str, *, retry: bool = True, needs_setup: bool = False
        ) -> None:
            super().__init__()
            self.reason = reason
            self.retry = retry
            """Whether answering the last message again can help."""
            self.needs_setup = needs_setup
            """The provider is not configured: provider setup should open."""

    def __init__(
        self,
        backend: Backend,
        conversation: Conversation,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.backend = backend
        self.conversation = conversation
        """Where user messages and replies are shown."""
        self.worker: Worker[None] | None = None
        """The last reply's worker (None before the first send)."""

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        """An unexpected error in a worker: a notice, never a crash."""
        if event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        reason = f"{type(error).__name__}: {error}"
        if event.worker.group == "reply":
            self.post_message(self.Stopped())
            self.post_message(self.Failed(reason))
        else:
            self.notify(reason, title="Something went wrong", severity="error")

    @property
    def running(self) -> bool:
        return self.worker is not None and self.worker.is_running

    def start(self, job: ReplyJob) -> None:
        """Stream a reply for `job` (cancelling one still running)."""
        self.worker = self.stream_reply(job)

    def cancel(self) -> bool:
        """Stop the running reply (its partial text is kept); False if none."""
        if self.worker is None or not self.worker.is_running:
            return False
        self.worker.cancel()
        return True

    # -- workers ---------------------------------------------------------------
    @work(exclusive=True, group="reply", exit_on_error=False)
    async def stream_reply(self, job: ReplyJob) -> None:
        """Stream one reply into the conversation."""
        try:
            session = self.backend.session()
            await self.load_model()
        except GrizzError as exc:
            if job.user_message is None:
                await self._store_unsent(job)
            needs_setup = isinstance(exc, ConfigError)
            self.post_message(self.Failed(str(exc), needs_setup=needs_setup))
            return
        if job.user_message is not None:
            events = session.respond(job.user_message)
        else:
            events = session.send(job.text, attachments=job.attachments)
        await self._consume(events, job)

    @work(group="model", exit_on_error=False)
    async def preload_model(self) -> None:
        """Load the local model in the background once the day is on screen."""
        try:
            await self.load_model()
        except GrizzError as exc:
            self.post_message(self.Failed(str(exc), retry=False))

    async def load_model(self) -> None:
        """Load the local model (if it is the provider), posting its progress.

        Raises:
            GrizzError: the model cannot be loaded (the reason is user-facing).
        """
        backend = self.backend
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

    # -- streaming -------------------------------------------------------------
    async def _store_unsent(self, job: ReplyJob) -> None:
        """Keep a message that could not be sent (no provider yet): never lose it."""
        from grizz_core.days import tz_name
        from grizz_core.domain import Role

        store = self.backend.store
        conversation_id = await store.ensure_day(
            job.day, tz_name(self.backend.settings.timezone)
        )
        message = await store.add_message(
            conversation_id=conversation_id,
            role=Role.USER,
            content=job.text,
            attachments=job.attachments,
        )
        await self.conversation.add(message, files=[a.name for a in job.attachments])

    async def _consume(
        self, events: AsyncIterator[SessionEvent], job: ReplyJob
    ) -> None:
        from grizz_core.companion.session import (
            ReplyFinished,
            ReplyStarted,
            ToolUsed,
            UserMessageStored,
        )
        from grizz_core.providers.base import TextDelta

        view: MessageView | None = None
        error = ""
        self.post_message(self.Started())
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
                    self._memory_changed(event)
                elif isinstance(event, ReplyFinished):
                    self.post_message(self.Finished(event.usage, event.elapsed))
        except GrizzError as exc:
            error = str(exc)
        finally:
            await _close(events)
            self.post_message(self.Stopped())
            if view is not None:
                final = await self.backend.store.get_message(view.message.id)
                if final is not None:
                    await view.finish(final)
                    self.post_message(ReplyEnded(final, error))
        if error:
            self.post_message(self.Failed(error))

    async def _start_reply_view(self, reply_id: str) -> MessageView | None:
        message = await self.backend.store.get_message(reply_id)
        if message is None:
            return None
        view = await self.conversation.add(message)
        view.start_stream()
        self.conversation.anchor()
        return view

    def _memory_changed(self, event: ToolUsed) -> None:
        if event.name in ("remember", "forget") and event.ok and event.memory_id:
            self.post_message(
                self.MemoryChanged(event.name, event.summary, event.memory_id)
            )


async def _close(events: AsyncIterator[SessionEvent]) -> None:
    """Close the session's event generator: its `finally` stores the reply."""
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()


def loading_text(text: str, fraction: float | None) -> str:
    """'Loading the local model… 40%' (no percentage when it is unknown)."""
    if fraction is None:
        return f"{text}…"
    return f"{text}… {round(min(max(fraction, 0.0), 1.0) * 100)}%"
