"""Fixtures for the app's tests: the app factory and seeded days."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from grizz_core import days
from grizz_core.domain import Message, Role, Status
from grizz_tui.tui.app import GrizzApp, make_app


@pytest.fixture
def app_factory(grizz_home: Path) -> Callable[..., GrizzApp]:
    """`make_app` with animations off (no blink, no moving dots)."""

    def build(**kwargs: Any) -> GrizzApp:
        kwargs.setdefault("animate", False)
        return make_app(**kwargs)

    return build


@pytest.fixture
def today() -> str:
    return days.today()


Seed = Callable[..., list[Message]]


@pytest.fixture
def seed(grizz_home: Path) -> Seed:
    """Store messages on a day: `seed("2025-03-03", ("user", "hi"), ...)`."""
    from grizz_tui.store import conversations as conv
    from grizz_tui.store.db import open_database

    def add(
        day: str, *pairs: tuple[str, str], status: Status = Status.COMPLETE
    ) -> list[Message]:
        db = open_database(grizz_home / "grizz.db")
        try:
            conversation = conv.ensure_conversation(db, day, "UTC")
            return [
                conv.add_message(
                    db,
                    conversation_id=conversation.id,
                    role=Role(role),
                    content=text,
                    status=status,
                    model="fake-model" if role == "assistant" else "",
                    metadata={"usage": {"prompt_tokens": 12, "completion_tokens": 34}}
                    if role == "assistant"
                    else {},
                )
                for role, text in pairs
            ]
        finally:
            db.close()

    return add
