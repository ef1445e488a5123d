"""docs/protocol.md against the code: what a client built from the page needs."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from grizz_core.domain import DAY_NAMESPACE, day_conversation_id

DOC = Path(__file__).parents[2] / "docs" / "protocol.md"


def _section(title: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


class TestConversationIds:
    def test_the_documented_formula_is_the_one_the_server_checks(self) -> None:
        section = _section("Conversation ids")
        namespace = re.search(r"namespace\s+`([0-9a-f-]{36})`", section)
        assert namespace is not None, "the namespace UUID is documented"
        assert uuid.UUID(namespace.group(1)) == DAY_NAMESPACE
        assert "uuid5" in section.lower() or "version 5" in section.lower()

    def test_the_worked_example_is_right(self) -> None:
        section = _section("Conversation ids")
        example = re.search(
            r"day `(\d{4}-\d{2}-\d{2})` has the conversation id\s+`([0-9a-f-]{36})`",
            section,
        )
        assert example is not None, "a worked example is documented"
        day, documented = example.groups()
        assert documented == day_conversation_id(day)
        assert documented == str(uuid.uuid5(DAY_NAMESPACE, day.encode().decode()))
