"""A streaming OpenAI-compatible endpoint that costs almost no CPU (server benches).

The server benchmarks share two cores between the benchmark client, this fake,
Redis, the gateway and the workers, so the fake must not be what they measure.
The test suite's fake (`tests/fakes/openai_server.py`) runs a thread per
connection and flushes every SSE event with its own syscall; this one is one
asyncio process that keeps connections alive, builds each reply's bytes once
and writes them in one go (or event by event with `--delay-ms` between them,
for long-lived streams). Both the direct and the server path of a benchmark
call the same fake, so its cost is on both sides of every ratio.

It speaks the subset the provider uses: `POST …/chat/completions` with
`"stream": true` (SSE with `[DONE]`, chunked transfer encoding, usage in the
last event) or false (one JSON body), HTTP/1.1 keep-alive.

    python bench/server_fake.py --text "..." --chunk 8 [--delay-ms 0]   # prints its URL
"""

from __future__ import annotations

import argparse
import asyncio
import json

CHUNK_ID = "chatcmpl-bench"


def _event(payload: dict[str, object] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    raw = f"data: {data}\n\n".encode()
    return f"{len(raw):x}\r\n".encode() + raw + b"\r\n"


def sse_events(text: str, chunk: int, model: str = "fake-model") -> list[bytes]:
    """The chunked-encoded SSE events of one streamed reply, `[DONE]` included."""

    def delta(d: dict[str, str], finish: str | None = None) -> dict[str, object]:
        return {
            "id": CHUNK_ID,
            "object": "chat.completion.chunk",
            "model": model,
            "choices": [{"index": 0, "delta": d, "finish_reason": finish}],
        }

    events = [_event(delta({"role": "assistant", "content": ""}))]
    for i in range(0, len(text), max(1, chunk)):
        events.append(_event(delta({"content": text[i : i + chunk]})))
    events.append(_event(delta({}, "stop")))
    words = max(1, len(text.split()))
    events.append(
        _event(
            {
                "id": CHUNK_ID,
                "object": "chat.completion.chunk",
                "model": model,
                "choices": [],
                "usage": {
                    "prompt_tokens": 10,
                    "completion_tokens": words,
                    "total_tokens": 10 + words,
                },
            }
        )
    )
    events.append(_event("[DONE]"))
    return events


class Fake:
    def __init__(self, text: str, chunk: int, delay_s: float) -> None:
        self.events = sse_events(text, chunk)
        self.stream_head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        self.stream_body = b"".join(self.events) + b"0\r\n\r\n"
        body = json.dumps(
            {
                "id": CHUNK_ID,
                "object": "chat.completion",
                "model": "fake-model",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
            }
        ).encode()
        self.json_reply = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        self.delay_s = delay_s

    async def handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b"{}"
                if b'"stream": true' in body or b'"stream":true' in body:
                    await self._stream(writer)
                else:
                    writer.write(self.json_reply)
                    await writer.drain()
        except (
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ConnectionError,
        ):
            pass
        finally:
            writer.close()

    async def _stream(self, writer: asyncio.StreamWriter) -> None:
        if not self.delay_s:
            writer.write(self.stream_head + self.stream_body)
            await writer.drain()
            return
        writer.write(self.stream_head + self.events[0] + self.events[1])
        await writer.drain()
        for event in self.events[2:]:
            await asyncio.sleep(self.delay_s)
            writer.write(event)
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--text", default="Hello! " * 40)
    parser.add_argument("--chunk", type=int, default=8)
    parser.add_argument(
        "--delay-ms", type=float, default=0.0, help="pause between content events"
    )
    args = parser.parse_args()
    fake = Fake(args.text, args.chunk, args.delay_ms / 1000)
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    print(f"http://127.0.0.1:{port}/v1", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
