"""Context assembly within a token budget. Pure functions: no I/O.

The model sees, in order of priority:
1. the persona and the current time (always);
2. the new user message (always);
3. notes it remembers about the user, most relevant first (up to ~20% of the budget);
4. a short recap of the previous day (up to ~15%);
5. today's conversation, newest first, until the budget is spent.

Unused room in (3) and (4) goes to (5). Tokens are estimated at ~4 characters
each, which is close enough for budgeting across tokenizers and costs no import.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from grizz_core.domain import MemoryItem, Message, Role, Status

MEMORY_SHARE = 0.20
RECAP_SHARE = 0.15
RECAP_LINE_CHARS = 240
IMAGE_TOKENS = 800
MESSAGE_OVERHEAD = 4


def estimate_tokens(text: str) -> int:
    """Rough token count of `text` (~4 characters per token)."""
    return (len(text) + 3) // 4


@dataclass(frozen=True)
class ContextRequest:
    """Everything the assembler may draw on."""

    persona: str
    budget: int
    user_text: str
    now_text: str = ""
    image_urls: Sequence[str] = ()
    memories: Sequence[MemoryItem] = ()
    """Candidate notes, most relevant first."""
    today: Sequence[Message] = ()
    """Today's earlier messages, newest first (not including the new one)."""
    recap_day: str = ""
    recap: Sequence[Message] = ()
    """The previous day's messages, newest first."""


@dataclass
class Context:
    messages: list[dict[str, Any]]
    tokens: int
    memories_used: int = 0
    today_used: int = 0
    recap_used: int = 0
    dropped: list[str] = field(default_factory=list)


def _take(lines: Sequence[str], room: int) -> tuple[list[str], int]:
    """Longest prefix of `lines` that fits in `room` tokens; (lines, tokens)."""
    taken: list[str] = []
    used = 0
    for line in lines:
        cost = estimate_tokens(line) + 1
        if used + cost > room:
            break
        taken.append(line)
        used += cost
    return taken, used


def _usable(message: Message) -> bool:
    if message.deleted or not message.content.strip():
        return False
    return not (message.role == Role.ASSISTANT and message.status == Status.ERROR)


def _memory_line(note: MemoryItem) -> str:
    title = f"{note.title}: " if note.title else ""
    return f"- [{note.id[:8]}] {title}{_one_line(note.content, 400)}"


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def build_context(req: ContextRequest) -> Context:
    """Assemble chat-completions messages for `req` within `req.budget` tokens."""
    user_content: str | list[dict[str, Any]] = req.user_text
    fixed = estimate_tokens(req.persona) + estimate_tokens(req.now_text)
    fixed += estimate_tokens(req.user_text) + 2 * MESSAGE_OVERHEAD
    if req.image_urls:
        user_content = [{"type": "text", "text": req.user_text}] + [
            {"type": "image_url", "image_url": {"url": url}} for url in req.image_urls
        ]
        fixed += IMAGE_TOKENS * len(req.image_urls)
    room = max(0, req.budget - fixed)

    memory_lines, memory_cost = _take(
        [_memory_line(m) for m in req.memories],
        int(room * MEMORY_SHARE),
    )
    recap_lines, recap_cost = _take(
        [
            f"{'User' if m.role == Role.USER else 'Grizz'}: "
            f"{_one_line(m.content, RECAP_LINE_CHARS)}"
            for m in req.recap
            if _usable(m)
        ],
        int(room * RECAP_SHARE),
    )
    room -= memory_cost + recap_cost

    history: list[dict[str, Any]] = []
    for message in (m for m in req.today if _usable(m)):
        cost = estimate_tokens(message.content) + MESSAGE_OVERHEAD
        if cost > room:
            break
        room -= cost
        history.append({"role": str(message.role), "content": message.content})
    history.reverse()

    system = [req.persona.rstrip()]
    if req.now_text:
        system.append(req.now_text)
    if memory_lines:
        system.append("What you remember about the user:\n" + "\n".join(memory_lines))
    if recap_lines:
        recap_lines.reverse()
        system.append(
            f"Recap of your last conversation ({req.recap_day}), for context only:\n"
            + "\n".join(recap_lines)
        )
    messages = [
        {"role": "system", "content": "\n\n".join(system)},
        *history,
        {"role": "user", "content": user_content},
    ]
    return Context(
        messages=messages,
        tokens=req.budget - room,
        memories_used=len(memory_lines),
        today_used=len(history),
        recap_used=len(recap_lines),
    )
