"""Server-side history for sync tests and bench/sync_catchup.py: change dicts
in the shape `push` takes, written straight into the server's store."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from grizz_core.domain import day_conversation_id

START = dt.datetime(2026, 1, 1, 9, tzinfo=dt.UTC)


def history(
    messages: int, notes: int = 0, *, per_day: int = 100, text: str = "x" * 120
) -> list[dict[str, Any]]:
    """Conversations, `messages` messages (user/assistant turns) and `notes` notes."""
    changes: list[dict[str, Any]] = []
    days = (messages + per_day - 1) // per_day
    for d in range(days):
        moment = START + dt.timedelta(days=d)
        day = moment.date().isoformat()
        stamp = moment.isoformat(timespec="microseconds")
        conv = day_conversation_id(day)
        changes.append(
            {
                "entity": "conversations",
                "id": conv,
                "data": {"day": day, "tz": "UTC", "created_at": stamp},
            }
        )
        for n in range(min(per_day, messages - d * per_day)):
            at = (moment + dt.timedelta(seconds=n)).isoformat(timespec="microseconds")
            changes.append(
                {
                    "entity": "messages",
                    "id": str(uuid.uuid4()),
                    "data": {
                        "conversation_id": conv,
                        "role": "user" if n % 2 == 0 else "assistant",
                        "content": f"{n} {text}",
                        "created_at": at,
                    },
                }
            )
    for n in range(notes):
        changes.append(
            {
                "entity": "memory",
                "id": str(uuid.uuid4()),
                "data": {"content": f"note {n}", "created_at": START.isoformat()},
            }
        )
    return changes


async def fill(
    user_store: Any, changes: list[dict[str, Any]], batch: int = 1000
) -> None:
    for start in range(0, len(changes), batch):
        results = await user_store.push(changes[start : start + batch])
        assert all(r["status"] == "applied" for r in results), results[:3]
