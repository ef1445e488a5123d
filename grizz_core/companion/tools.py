"""Grizz's memory tools (remember / recall / forget) for function calling."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from grizz_core.companion.ports import ChatStore
from grizz_core.providers.base import ToolCall

TOOL_SPECS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "remember",
            "description": (
                "Save a note about the user to long-term memory: a fact, preference, "
                "person, goal or anything they asked you to remember."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "content": {
                        "type": "string",
                        "description": "The note, one or two sentences.",
                    },
                    "title": {
                        "type": "string",
                        "description": "A short label (optional).",
                    },
                },
                "required": ["content"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "recall",
            "description": "Search your notes about the user by keywords.",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string", "description": "Keywords."}},
                "required": ["query"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "forget",
            "description": "Delete a note by its id (shown in brackets) when asked.",
            "parameters": {
                "type": "object",
                "properties": {"id": {"type": "string", "description": "The note id."}},
                "required": ["id"],
            },
        },
    },
]


@dataclass(frozen=True)
class ToolResult:
    name: str
    output: str
    """What the model receives (JSON text)."""
    summary: str
    """One line for the user, e.g. 'Remembered: likes tea'."""
    memory_id: str = ""
    ok: bool = True


def _fail(name: str, why: str) -> ToolResult:
    return ToolResult(
        name, json.dumps({"error": why}), f"{name} failed: {why}", ok=False
    )


async def run_tool(store: ChatStore, call: ToolCall) -> ToolResult:
    """Run one tool call against `store`. Bad arguments become an error result."""
    try:
        args = json.loads(call.arguments or "{}")
    except ValueError:
        return _fail(call.name, "arguments were not valid JSON")
    if not isinstance(args, dict):
        return _fail(call.name, "arguments must be an object")
    if call.name == "remember":
        content = str(args.get("content") or "").strip()
        if not content:
            return _fail(call.name, "content is empty")
        item = await store.remember(content, title=str(args.get("title") or ""))
        return ToolResult(
            "remember",
            json.dumps({"saved": item.id[:8]}),
            f"Remembered: {content}",
            item.id,
        )
    if call.name == "recall":
        query = str(args.get("query") or "")
        items = await store.recall(query)
        found = [
            {"id": m.id[:8], "title": m.title, "content": m.content} for m in items
        ]
        return ToolResult(
            "recall",
            json.dumps({"notes": found}),
            f"Looked through memory for '{query}'",
        )
    if call.name == "forget":
        ref = str(args.get("id") or "").strip().strip("[]")
        gone = await store.forget(ref) if len(ref) >= 4 else None
        if gone is None:
            return _fail(call.name, f"no note with id {ref!r}")
        item = gone
        return ToolResult(
            "forget",
            json.dumps({"deleted": item.id[:8]}),
            f"Forgot: {item.content}",
            item.id,
        )
    return _fail(call.name or "tool", f"unknown tool {call.name!r}")
