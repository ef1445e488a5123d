"""What a model backend is to the rest of Grizz: the `Provider` protocol, with
its capabilities declared, and the events a reply streams.

`ChatSession`, `grizz ask`, the app and the server's workers speak to every
backend (an OpenAI-compatible endpoint, the built-in local model) through this
protocol only. What differs between backends (a context window of its own, a
compact persona, a model to load first) is declared here as attributes that
each provider sets, so callers read them plainly instead of probing.

Must not import: httpx, aiohttp, llama_cpp, any other Grizz module (importing
it is cheap: the app's start-up path may load it before the first frame).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class TextDelta:
    """A piece of reply text."""

    text: str


@dataclass(frozen=True)
class ToolCall:
    """One function call the model asked for."""

    id: str
    name: str
    arguments: str
    """Raw JSON text of the arguments, as the model produced it."""


@dataclass(frozen=True)
class StreamEnd:
    """The last event of one completion."""

    finish_reason: str
    model: str = ""
    usage: dict[str, int] = field(default_factory=dict)
    tool_calls: tuple[ToolCall, ...] = ()


StreamEvent = TextDelta | StreamEnd

Progress = Callable[[str, float | None], None]
"""Called with (what is happening, fraction done or None); from a worker thread."""


class Provider(Protocol):
    """What `ChatSession` and the apps need from a model backend."""

    model: str
    """The model's name, as shown and as sent."""
    supports_tools: bool
    """It can call the companion's tools (remember, recall, …)."""

    @property
    def prompt_budget(self) -> int | None:
        """Tokens the assembled context may use when the provider knows its own
        window (a local model: the window less the reply room); None lets the
        settings (`context_tokens`) decide alone."""
        ...

    @property
    def persona(self) -> str | None:
        """A persona of its own (a small model's compact one), or None for the
        companion's default."""
        ...

    @property
    def needs_loading(self) -> bool:
        """A model still has to be loaded before the first reply; an app can
        call `load()` ahead of time and show its progress."""
        ...

    async def load(self, progress: Progress | None = None) -> object:
        """Make the model ready (once); a no-op for a remote endpoint.

        Args:
            progress: told what is happening, from a worker thread.

        Returns:
            What was loaded, in the provider's own terms (the local model's
            `LoadInfo`); callers going through the protocol ignore it.
        """
        ...

    def stream(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        tools: Sequence[dict[str, Any]] = (),
        stream: bool = True,
    ) -> AsyncIterator[StreamEvent]:
        """One reply to `messages`: `TextDelta`s, then one `StreamEnd`."""
        ...

    async def aclose(self) -> None:
        """Release connections, threads and models."""
        ...
