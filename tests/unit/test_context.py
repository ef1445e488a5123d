"""Context assembly within a token budget (pure, no I/O)."""

from __future__ import annotations

from grizz_core.companion.context import ContextRequest, build_context, estimate_tokens
from grizz_core.domain import MemoryItem, Message, Role, Status


def msg(
    i: int, text: str, role: Role = Role.USER, status: Status = Status.COMPLETE
) -> Message:
    return Message(f"m{i}", "c", role, text, status, f"t{i:04d}", f"t{i:04d}")


def note(i: int, text: str) -> MemoryItem:
    return MemoryItem(f"note{i:04d}-xxxx", "note", "", text, "t", "t")


def test_persona_and_user_message_always_present() -> None:
    ctx = build_context(
        ContextRequest(persona="You are Grizz.", budget=1, user_text="hi")
    )
    assert ctx.messages[0] == {"role": "system", "content": "You are Grizz."}
    assert ctx.messages[-1] == {"role": "user", "content": "hi"}


def test_newest_messages_win_and_order_is_chronological() -> None:
    today = [
        msg(i, f"message number {i} " * 10) for i in range(100, 0, -1)
    ]  # newest first
    ctx = build_context(
        ContextRequest(persona="P", budget=600, user_text="now", today=today)
    )
    history = [m["content"] for m in ctx.messages[1:-1]]
    assert history[-1].startswith("message number 100 ")
    numbers = [int(h.split()[2]) for h in history]
    assert numbers == sorted(numbers) and 1 not in numbers
    assert ctx.tokens <= 600


def test_memory_share_is_capped_and_unused_room_goes_to_today() -> None:
    notes = [note(i, "remembered fact " * 20) for i in range(50)]
    today = [msg(i, "short") for i in range(10, 0, -1)]
    ctx = build_context(
        ContextRequest(
            persona="P", budget=2000, user_text="q", memories=notes, today=today
        )
    )
    memory_tokens = sum(estimate_tokens(n.content) for n in notes[: ctx.memories_used])
    assert 0 < ctx.memories_used < 50 and memory_tokens <= 2000 * 0.2 + 50
    assert ctx.today_used == 10
    assert "[note0000]" in ctx.messages[0]["content"]


def test_recap_lines_are_short_and_oldest_first() -> None:
    recap = [msg(2, "x" * 1000, Role.ASSISTANT), msg(1, "I have an exam")]
    ctx = build_context(
        ContextRequest(
            persona="P", budget=5000, user_text="q", recap_day="2026-11-22", recap=recap
        )
    )
    system = ctx.messages[0]["content"]
    assert "Recap of your last conversation (2026-11-22)" in system
    assert system.index("User: I have an exam") < system.index("Grizz: xxx")
    assert "x" * 300 not in system


def test_failed_and_empty_replies_are_left_out() -> None:
    today = [
        msg(3, "", Role.ASSISTANT, Status.ERROR),
        msg(2, "half", Role.ASSISTANT, Status.INTERRUPTED),
        msg(1, "hello"),
    ]
    ctx = build_context(
        ContextRequest(persona="P", budget=500, user_text="q", today=today)
    )
    assert [m["content"] for m in ctx.messages[1:-1]] == ["hello", "half"]
