"""What a model accepts in a chat-completions request, by model name.

Most OpenAI-compatible models take `max_tokens` and a custom `temperature`.
OpenAI's reasoning models (o1, o3, o4, gpt-5 and their variants) reject
`max_tokens` in favour of `max_completion_tokens`, and refuse any temperature
but the default; the client asks `capabilities_of(model)` when it builds a
request body. A model not in the table keeps the usual request.

Must not import: httpx, aiohttp, the transports or the client.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal


@dataclass(frozen=True)
class ModelCapabilities:
    """The request fields one model takes."""

    tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    """The name under which the reply's token limit is sent."""
    temperature: bool = True
    """It accepts a custom `temperature` (when False, none is sent)."""


USUAL = ModelCapabilities()
REASONING = ModelCapabilities(tokens_field="max_completion_tokens", temperature=False)

TABLE: tuple[tuple[str, ModelCapabilities], ...] = (
    ("o1*", REASONING),
    ("o3*", REASONING),
    ("o4*", REASONING),
    ("gpt-5*", REASONING),
)
"""(model name pattern, its capabilities), first match wins; case-insensitive."""


def capabilities_of(model: str) -> ModelCapabilities:
    """The capabilities of `model` (USUAL unless the table says otherwise)."""
    name = model.lower()
    for pattern, capabilities in TABLE:
        if fnmatchcase(name, pattern):
            return capabilities
    return USUAL
