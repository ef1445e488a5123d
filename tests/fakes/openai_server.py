"""An OpenAI-compatible chat-completions server on a real socket, for tests.

It speaks the same wire protocol as OpenAI / Ollama / vLLM: `POST
/v1/chat/completions` with SSE streaming (`data: {...}` chunks, `data: [DONE]`)
or a JSON body, tool-call deltas split across chunks, HTTP errors, delays and
malformed streams. Tests script it with `enqueue(...)`; every request body is
recorded in `requests`. Runs in a thread; `python -m tests.fakes.openai_server`
runs it standalone for benchmarks.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Text:
    """A normal reply, streamed in chunks of `chunk` characters."""

    text: str
    chunk: int = 4
    delay: float = 0.0
    """Seconds between chunks."""
    first_delay: float = 0.0
    finish: str = "stop"
    usage: dict[str, int] | None = field(
        default_factory=lambda: {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "total_tokens": 15,
        }
    )
    done: bool = True
    """Send `data: [DONE]` at the end (False + finish='' = a cut-off stream)."""


@dataclass
class ToolCalls:
    """The model calls tools: [(name, arguments-dict), ...], args split in pieces."""

    calls: list[tuple[str, dict[str, Any]]]
    text: str = ""
    pieces: int = 3


@dataclass
class HttpError:
    status: int
    message: str = "error"
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1
    """How many consecutive requests get this error."""
    raw_body: str | None = None


@dataclass
class RawSSE:
    """Send these exact SSE lines (for malformed-stream tests)."""

    lines: list[str]


@dataclass
class Hang:
    """Accept the request and say nothing for `seconds`."""

    seconds: float


Behaviour = Text | ToolCalls | HttpError | RawSSE | Hang


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up mid-stream is normal here; report anything else."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeOpenAI:
    def __init__(self, default: Behaviour | None = None) -> None:
        self.queue: deque[Behaviour] = deque()
        self.default: Behaviour = default or Text("Hello from Grizz's fake provider!")
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.peers: list[tuple[str, int]] = []
        """The client address of each request (the same one = a reused connection)."""
        self.models: list[str] | None = ["fake-model"]
        """What `GET /v1/models` lists; None: the route answers 404."""
        self.lock = threading.Lock()
        self.server = _Server(("127.0.0.1", 0), _make_handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.02},
            daemon=True,
        )

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def enqueue(self, *behaviours: Behaviour) -> None:
        with self.lock:
            self.queue.extend(behaviours)

    def next_behaviour(self) -> Behaviour:
        with self.lock:
            if not self.queue:
                return self.default
            head = self.queue[0]
            if isinstance(head, HttpError) and head.times > 1:
                head.times -= 1
                return HttpError(
                    head.status, head.message, head.headers, 1, head.raw_body
                )
            return self.queue.popleft()


def _chunk(
    model: str, delta: dict[str, Any], finish: str | None = None
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOpenAI
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        models = self.fake.models
        if self.path.rstrip("/").endswith("/models") and models is not None:
            self._json(
                200,
                {
                    "object": "list",
                    "data": [{"id": m, "object": "model"} for m in models],
                },
            )
        else:
            self._json(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._json(404, {"error": {"message": f"no route {self.path}"}})
            return
        body = json.loads(raw or b"{}")
        with self.fake.lock:
            self.fake.requests.append(body)
            self.fake.headers.append({k.lower(): v for k, v in self.headers.items()})
            self.fake.peers.append(self.client_address[:2])
        behaviour = self.fake.next_behaviour()
        model = str(body.get("model") or "fake-model")
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._respond(behaviour, model, bool(body.get("stream")))

    def _respond(self, b: Behaviour, model: str, stream: bool) -> None:
        if isinstance(b, HttpError):
            payload = (
                b.raw_body
                if b.raw_body is not None
                else json.dumps(
                    {
                        "error": {
                            "message": b.message,
                            "type": "fake",
                            "code": b.status,
                        }
                    }
                )
            )
            self._send(b.status, payload.encode(), "application/json", b.headers)
            return
        if isinstance(b, Hang):
            time.sleep(b.seconds)
            self._json(200, _completion(model, "late", "stop"))
            return
        if not stream and isinstance(b, Text):
            self._json(200, _completion(model, b.text, b.finish, b.usage))
            return
        if not stream and isinstance(b, ToolCalls):
            self._json(200, _tool_completion(model, b))
            return
        self._start_sse()
        if isinstance(b, RawSSE):
            for line in b.lines:
                self._write(line + "\n\n")
        elif isinstance(b, ToolCalls):
            self._stream_tools(b, model)
        else:
            self._stream_text(b, model)
        self._end_chunks()

    def _stream_text(self, b: Text, model: str) -> None:
        self._event(_chunk(model, {"role": "assistant", "content": ""}))
        if b.first_delay:
            time.sleep(b.first_delay)
        for i in range(0, len(b.text), max(1, b.chunk)):
            if b.delay and i:
                time.sleep(b.delay)
            self._event(_chunk(model, {"content": b.text[i : i + b.chunk]}))
        if b.finish:
            self._event(_chunk(model, {}, b.finish))
        if b.usage:
            self._event(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion.chunk",
                    "model": model,
                    "choices": [],
                    "usage": b.usage,
                }
            )
        if b.done:
            self._write("data: [DONE]\n\n")

    def _stream_tools(self, b: ToolCalls, model: str) -> None:
        if b.text:
            self._event(_chunk(model, {"role": "assistant", "content": b.text}))
        for index, (name, args) in enumerate(b.calls):
            text = json.dumps(args)
            step = max(1, len(text) // b.pieces + 1)
            self._event(
                _chunk(
                    model,
                    {
                        "tool_calls": [
                            {
                                "index": index,
                                "id": f"call_{index}",
                                "type": "function",
                                "function": {"name": name, "arguments": ""},
                            }
                        ]
                    },
                )
            )
            for i in range(0, len(text), step):
                self._event(
                    _chunk(
                        model,
                        {
                            "tool_calls": [
                                {
                                    "index": index,
                                    "function": {"arguments": text[i : i + step]},
                                }
                            ]
                        },
                    )
                )
        self._event(_chunk(model, {}, "tool_calls"))
        self._write("data: [DONE]\n\n")

    # -- low level -------------------------------------------------------
    def _start_sse(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()

    def _event(self, data: dict[str, Any]) -> None:
        self._write("data: " + json.dumps(data) + "\n\n")

    def _write(self, text: str) -> None:
        raw = text.encode()
        self.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
        self.wfile.flush()

    def _end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _json(self, status: int, data: dict[str, Any]) -> None:
        self._send(status, json.dumps(data).encode(), "application/json", {})

    def _send(
        self, status: int, raw: bytes, ctype: str, headers: dict[str, str]
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(raw)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(raw)


def _make_handler(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    return type("Handler", (_Handler,), {"fake": fake})


def _completion(
    model: str, text: str, finish: str, usage: dict[str, int] | None = None
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish,
            }
        ],
        "usage": usage
        or {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def _tool_completion(model: str, b: ToolCalls) -> dict[str, Any]:
    data = _completion(model, b.text, "tool_calls")
    data["choices"][0]["message"]["tool_calls"] = [
        {
            "id": f"call_{i}",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(args)},
        }
        for i, (name, args) in enumerate(b.calls)
    ]
    return data


def main() -> None:
    """Serve a fixed reply forever (for bench/): prints the base URL."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--text", default="Hello! " * 40)
    parser.add_argument("--chunk", type=int, default=8)
    args = parser.parse_args()
    fake = FakeOpenAI(default=Text(args.text, chunk=args.chunk)).start()
    print(fake.base_url, flush=True)
    try:
        fake.thread.join()
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
