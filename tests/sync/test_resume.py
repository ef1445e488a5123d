"""`grizz ask` keeps following its reply when the connection drops mid-way."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tests.fakes.openai_server import FakeOpenAI, Text
from tests.server.conftest import Stack
from tests.server.harness import until
from tests.sync.conftest import Home, start_gateway, stop_gateway

REPLY = "The river was cold, the salmon were quick, and the honey was sweet."


async def test_a_dropped_connection_resumes_the_reply_without_gaps_or_repeats(
    stack: Stack, homes: Callable[[str], Home], provider_env: FakeOpenAI
) -> None:
    laptop = homes("laptop")
    await laptop.login(stack.url, stack.tokens["alice"])
    provider_env.enqueue(Text(REPLY, chunk=3, delay=0.08))
    asking = asyncio.create_task(laptop.grizz("ask", "tell me a story"))

    def streaming() -> bool:
        rows = laptop.rows(
            "SELECT content FROM messages WHERE role = 'assistant'"
            " AND status = 'streaming'"
        )
        return bool(rows and rows[0]["content"])

    await until(streaming, what="the reply streaming on the laptop")
    port = await stop_gateway(stack)
    await start_gateway(stack, port)
    result = await asking
    assert result.exit_code == 0, result.stderr
    assert result.stdout == REPLY + "\n"
    stored = laptop.rows(
        "SELECT content, status FROM messages WHERE role = 'assistant'"
    )
    assert stored == [{"content": REPLY, "status": "complete"}]
    assert len(provider_env.requests) == 1
