"""A chat-completions response body → the stream events of `providers.base`.

The OpenAI wire format, read once for every transport: one JSON body (a
non-streamed request) or server-sent-event chunks with text deltas, tool-call
fragments to put back together, the finish reason and the usage.

Must not import: httpx, aiohttp, the transports or the client.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from grizz_core.providers import errors as wire_errors
from grizz_core.providers.base import StreamEnd, StreamEvent, TextDelta, ToolCall
from grizz_core.providers.sse import drain, sse_payloads
from grizz_core.providers.transport import Response


async def parse_completion(
    response: Response, *, host: str, model: str
) -> AsyncIterator[StreamEvent]:
    """The events of a non-streamed chat completion (one JSON body)."""
    await response.aread()
    try:
        data = response.json()
        choice = data["choices"][0]
        message = choice.get("message") or {}
    except (ValueError, KeyError, IndexError, TypeError):
        raise wire_errors.malformed(host, "not a chat completion") from None
    if message.get("content"):
        yield TextDelta(str(message["content"]))
    calls = tuple(
        ToolCall(
            id=str(c.get("id") or f"call_{i}"),
            name=str((c.get("function") or {}).get("name") or ""),
            arguments=str((c.get("function") or {}).get("arguments") or "{}"),
        )
        for i, c in enumerate(message.get("tool_calls") or [])
    )
    yield StreamEnd(
        finish_reason=str(choice.get("finish_reason") or "stop"),
        model=str(data.get("model") or model),
        usage=_usage(data.get("usage")),
        tool_calls=calls,
    )


def _stream_chunk(payload: str, host: str) -> dict[str, Any]:
    """One SSE payload as a chunk object; a malformed one or an error raises."""
    try:
        chunk = json.loads(payload)
    except ValueError:
        raise wire_errors.malformed(
            host, f"bad JSON in stream: {payload[:60]!r}"
        ) from None
    if not isinstance(chunk, dict):
        raise wire_errors.malformed(host, "stream chunk is not an object")
    if "error" in chunk:
        raise wire_errors.failed_mid_reply(host, chunk["error"])
    return chunk


async def parse_stream(
    response: Response,
    *,
    host: str,
    model: str,
    errors: tuple[type[BaseException], ...],
) -> AsyncIterator[StreamEvent]:
    """The events of a streamed chat completion (server-sent events).

    Args:
        response: the response, its body still to read.
        host: named in the errors.
        model: the model asked for, until the chunks name theirs.
        errors: what the transport may raise reading the rest of the body
            after `[DONE]` (ignored then).
    """
    tools: dict[int, _ToolAccumulator] = {}
    finish = ""
    usage: dict[str, int] = {}
    done = False
    payloads = sse_payloads(response)
    async for payload in payloads:
        if payload == "[DONE]":
            done = True
            break
        chunk = _stream_chunk(payload, host)
        model = str(chunk.get("model") or model)
        usage = _usage(chunk.get("usage")) or usage
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if not isinstance(delta, dict):
                raise wire_errors.malformed(host, "delta is not an object")
            text = delta.get("content")
            if text:
                yield TextDelta(str(text))
            for call in delta.get("tool_calls") or []:
                _accumulate_tool_call(tools, call)
            finish = str(choice.get("finish_reason") or finish)
    if not done and not finish:
        raise wire_errors.closed_early(host)
    calls = tuple(
        ToolCall(
            id=acc.id or f"call_{i}",
            name=acc.name,
            arguments="".join(acc.arguments),
        )
        for i, acc in sorted(tools.items())
    )
    if calls and finish in ("", "stop"):
        finish = "tool_calls"
    yield StreamEnd(
        finish_reason=finish or "stop", model=model, usage=usage, tool_calls=calls
    )
    if done:
        await drain(payloads, errors)


@dataclass
class _ToolAccumulator:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


def _accumulate_tool_call(tools: dict[int, _ToolAccumulator], call: Any) -> None:
    if not isinstance(call, dict):
        return
    index = call.get("index")
    index = index if isinstance(index, int) else len(tools)
    acc = tools.setdefault(index, _ToolAccumulator())
    if call.get("id"):
        acc.id = str(call["id"])
    function = call.get("function") or {}
    if function.get("name"):
        acc.name += str(function["name"])
    if function.get("arguments"):
        acc.arguments.append(str(function["arguments"]))


def _usage(raw: Any) -> dict[str, int]:
    if not isinstance(raw, dict):
        return {}
    return {
        k: v for k, v in raw.items() if isinstance(v, int) and not isinstance(v, bool)
    }
