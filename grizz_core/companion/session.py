"""`ChatSession`: persist the user's message → stream the reply → persist it.

Shared by `grizz ask`, the app and the server's workers; only rendering differs.

Guarantees (tests in tests/unit/test_session.py):
- the user's message is stored before anything is sent to the provider;
- the reply row exists from the first moment (`streaming`), its text is saved
  at least every `flush_interval` seconds, and it always ends `complete`,
  `interrupted` (cancelled, Ctrl-C, the consumer went away) or `error` —
  never silently dropped, never `complete` when it was not.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any

from grizz_core import days
from grizz_core.companion.attachments import data_url
from grizz_core.companion.context import ContextRequest, build_context
from grizz_core.companion.persona import PERSONA
from grizz_core.companion.ports import ChatStore
from grizz_core.companion.tools import TOOL_SPECS, run_tool
from grizz_core.domain import Attachment, Message, Role, Status
from grizz_core.errors import GrizzError
from grizz_core.providers.base import Provider, StreamEnd, TextDelta
from grizz_core.settings import ProviderSettings

MAX_TOOL_ROUNDS = 4
MEMORY_CANDIDATES = 40
TODAY_MESSAGE_LIMIT = 400


@dataclass(frozen=True)
class UserMessageStored:
    message: Message


@dataclass(frozen=True)
class ReplyStarted:
    message_id: str
    conversation_id: str


@dataclass(frozen=True)
class ToolUsed:
    name: str
    summary: str
    memory_id: str = ""
    ok: bool = True


@dataclass(frozen=True)
class ReplyFinished:
    message: Message
    model: str
    finish_reason: str
    usage: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0
    first_token: float | None = None
    """Seconds from sending to the first text delta."""


SessionEvent = UserMessageStored | ReplyStarted | TextDelta | ToolUsed | ReplyFinished


class ChatSession:
    """One user's conversation with Grizz over a `ChatStore` and a `Provider`."""

    def __init__(
        self,
        store: ChatStore,
        provider: Provider,
        *,
        tz: str = "",
        context_tokens: int = 6000,
        tools: bool = True,
        persona: str = PERSONA,
        flush_interval: float = 0.25,
    ) -> None:
        self.store = store
        self.provider = provider
        self.tz = tz
        self.context_tokens = context_tokens
        self.tools = tools
        self.persona = persona
        self.flush_interval = flush_interval

    async def send(
        self,
        text: str,
        *,
        attachments: Sequence[Attachment] = (),
        stream: bool = True,
    ) -> AsyncGenerator[SessionEvent, None]:
        """Store `text` in today's conversation, then stream Grizz's reply."""
        day = days.today(self.tz)
        conversation_id = await self.store.ensure_day(day, days.tz_name(self.tz))
        message = await self.store.add_message(
            conversation_id=conversation_id,
            role=Role.USER,
            content=text,
            attachments=attachments,
        )
        yield UserMessageStored(message)
        async for event in self.respond(message, stream=stream):
            yield event

    async def respond(
        self,
        user_message: Message,
        *,
        reply_id: str | None = None,
        stream: bool = True,
        metadata: dict[str, Any] | None = None,
    ) -> AsyncGenerator[SessionEvent, None]:
        """Stream and persist a reply to an already stored user message.

        `reply_id` lets the server derive the id from its job, so a redelivered
        job rewrites the same row instead of creating a second reply.
        """
        started = time.monotonic()
        reply = await self.store.start_reply(
            reply_id=reply_id or str(uuid.uuid4()),
            conversation_id=user_message.conversation_id,
            model=self.provider.model,
            metadata={**(metadata or {}), "reply_to": user_message.id},
        )
        yield ReplyStarted(reply.id, reply.conversation_id)
        writer = _ReplyWriter(self.store, reply.id, self.flush_interval)
        try:
            messages = await self._context(user_message, reply.id)
            end = StreamEnd(finish_reason="stop", model=self.provider.model)
            usage: dict[str, int] = {}
            first_token: float | None = None
            for round_no in range(MAX_TOOL_ROUNDS + 1):
                use_tools = (
                    self.tools
                    and self.provider.supports_tools
                    and round_no < MAX_TOOL_ROUNDS
                )
                round_text: list[str] = []
                async for event in self.provider.stream(
                    messages, tools=TOOL_SPECS if use_tools else (), stream=stream
                ):
                    if isinstance(event, TextDelta):
                        if first_token is None:
                            first_token = time.monotonic() - started
                        round_text.append(event.text)
                        await writer.append(event.text)
                        yield event
                    else:
                        end = event
                for key, value in end.usage.items():
                    usage[key] = usage.get(key, 0) + value
                if not (use_tools and end.tool_calls):
                    break
                messages.append(_assistant_tool_message("".join(round_text), end))
                for call in end.tool_calls:
                    result = await run_tool(self.store, call)
                    writer.tools.append(
                        {
                            "name": result.name,
                            "summary": result.summary,
                            "memory_id": result.memory_id,
                        }
                    )
                    messages.append(
                        {
                            "role": "tool",
                            "tool_call_id": call.id,
                            "content": result.output,
                        }
                    )
                    yield ToolUsed(
                        result.name, result.summary, result.memory_id, result.ok
                    )
            elapsed = time.monotonic() - started
            final = await writer.finish(
                Status.COMPLETE,
                {
                    "finish_reason": end.finish_reason,
                    "usage": usage,
                    "model": end.model,
                    "elapsed": round(elapsed, 3),
                },
            )
            yield ReplyFinished(
                final, end.model, end.finish_reason, usage, elapsed, first_token
            )
        except (asyncio.CancelledError, KeyboardInterrupt, GeneratorExit):
            await writer.finish(Status.INTERRUPTED, {})
            raise
        except GrizzError as exc:
            await writer.finish(Status.ERROR, {"error": str(exc)})
            raise
        except Exception as exc:
            await writer.finish(Status.ERROR, {"error": f"{type(exc).__name__}: {exc}"})
            raise

    async def _context(
        self, user_message: Message, reply_id: str
    ) -> list[dict[str, Any]]:
        day = days.today(self.tz)
        today = await self.store.recent_messages(
            user_message.conversation_id,
            limit=TODAY_MESSAGE_LIMIT,
            exclude=(user_message.id, reply_id),
        )
        recap_day, recap = await self.store.previous_day(day)
        memories = await self.store.relevant_memories(
            user_message.content, limit=MEMORY_CANDIDATES
        )
        images = [data_url(a) for a in await self.store.attachments_of(user_message.id)]
        now = dt.datetime.now(days.resolve_tz(self.tz))
        context = build_context(
            ContextRequest(
                persona=self.persona,
                budget=self.context_tokens,
                user_text=user_message.content,
                now_text=f"It is {now:%A %d %B %Y, %H:%M} for the user "
                f"({days.tz_name(self.tz)}).",
                image_urls=images,
                memories=memories,
                today=today,
                recap_day=recap_day,
                recap=recap,
            )
        )
        return context.messages


def _assistant_tool_message(text: str, end: StreamEnd) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": text or None,
        "tool_calls": [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            }
            for c in end.tool_calls
        ],
    }


class _ReplyWriter:
    """Accumulates reply text and saves it at most every `interval` seconds."""

    def __init__(self, store: ChatStore, reply_id: str, interval: float) -> None:
        self.store = store
        self.reply_id = reply_id
        self.interval = interval
        self.parts: list[str] = []
        self.tools: list[dict[str, str]] = []
        self._last_flush = time.monotonic()
        self._done = False

    @property
    def text(self) -> str:
        return "".join(self.parts)

    async def append(self, text: str) -> None:
        self.parts.append(text)
        if time.monotonic() - self._last_flush >= self.interval:
            self._last_flush = time.monotonic()
            await self.store.update_message(self.reply_id, content=self.text)

    async def finish(self, status: Status, metadata: dict[str, Any]) -> Message:
        if not self._done:
            self._done = True
            if self.tools:
                metadata = {**metadata, "tools": self.tools}
            await self.store.update_message(
                self.reply_id, content=self.text, status=status, metadata=metadata
            )
        message = await self.store.get_message(self.reply_id)
        assert message is not None
        return message


def make_session_for(
    settings: ProviderSettings, store: ChatStore, provider: Provider, *, tz: str
) -> ChatSession:
    """A session whose context fits the provider (a local model's window and
    compact persona, when the provider declares them), in time zone `tz`."""
    budget = settings.context_tokens
    window = provider.prompt_budget
    if window is not None and window > 0:
        budget = min(budget, window)
    return ChatSession(
        store,
        provider,
        tz=tz,
        context_tokens=budget,
        tools=settings.tools,
        persona=provider.persona or PERSONA,
    )
