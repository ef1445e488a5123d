"""Streaming render cost: CPU per chunk at the start vs the end of a long reply,
and how fast key presses are handled while it streams.

The fake OpenAI-compatible server runs in a separate process (so its CPU is
not counted) and streams a ~10,000-token Markdown reply (paragraphs, lists,
code fences, tables) two tokens (8 characters) per SSE chunk at a fixed rate
(default 600 tokens/s). The real app runs headless in this process at
100x40 and streams it through `ChatSession` into the chat screen. Every 0.25 s
we sample this process's CPU time and the reply's length on screen; every
0.2 s a key press is posted to the composer and the delay until the composer
dispatches it is recorded.

    .venv/bin/python bench/stream_render.py [--tokens 10000] [--rate 600]

Reported: CPU ms per token early (2-12 %) and late (88-98 %) in the reply (flat =
no growth with length), and key-press handling latency p50/p95/max.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PARAGRAPH = """Here is a thought about part {n}, written the way a reply usually is:
a few sentences of plain prose with some **bold** and *italic* words, a
`code span` and now and then a [link](https://example.com). It goes on for a
couple of lines so that paragraphs are the bulk of the text, as in real replies.

"""
LIST = """- first point of part {n}
- second point, a little longer than the first one
  - a nested detail

"""
FENCE = """```python
def part_{n}(items: list[int]) -> int:
    return sum(i * {n} for i in items)
```

"""
TABLE = """| item | value |
|------|-------|
| a{n} | {n}   |
| b{n} | {n}0  |

"""


def section(n: int) -> str:
    """A typical stretch of a long reply: a heading, prose, and now and then a
    list (every 2nd), a code block (every 3rd) or a table (every 5th)."""
    parts = [f"## Part {n}\n\n", PARAGRAPH, PARAGRAPH]
    if n % 2 == 0:
        parts.append(LIST)
    if n % 3 == 0:
        parts.append(FENCE)
    if n % 5 == 0:
        parts.append(TABLE)
    parts.append(PARAGRAPH)
    return "".join(parts).format(n=n)


SERVER = """
import sys, time
from tests.fakes.openai_server import FakeOpenAI, Text
text = open(sys.argv[1], encoding="utf-8").read()
reply = Text(text, chunk=int(sys.argv[3]), delay=float(sys.argv[2]))
fake = FakeOpenAI(default=reply).start()
print(fake.base_url, flush=True)
sys.stdin.read()
fake.stop()
"""


def make_reply(tokens: int) -> str:
    parts: list[str] = []
    n = 0
    while sum(map(len, parts)) < tokens * 4:
        parts.append(section(n))
        n += 1
    return "".join(parts)[: tokens * 4]


async def run(reply: str, base_url: str, key_every: float) -> dict[str, object]:
    from textual import events

    from grizz_tui.tui.app import make_app

    samples: list[tuple[float, float, int]] = []
    latencies: list[float] = []
    posted: dict[int, float] = {}

    def hook(message: object) -> None:
        if isinstance(message, events.Key) and id(message) in posted:
            latencies.append(time.perf_counter() - posted.pop(id(message)))

    os.environ["OPENAI_BASE_URL"] = base_url
    app = make_app(animate=False)
    async with app.run_test(size=(100, 40), message_hook=hook):
        while not app.chat.day:
            await asyncio.sleep(0.02)
        await asyncio.sleep(1.0)  # let the warm-up import finish
        composer = app.chat.composer
        composer.insert("write me something long")
        composer.post_message(events.Key("enter", None))
        view = None
        while view is None or not view.query("Markdown"):
            await asyncio.sleep(0.01)
            view = app.chat.conversation.last_view("assistant")
        composer.focus()
        next_key = time.perf_counter()
        started = time.perf_counter()
        while app.chat.replying:
            now = time.perf_counter()
            samples.append((now - started, time.process_time(), received_length(view)))
            if now >= next_key:
                key = events.Key("x", "x")
                posted[id(key)] = time.perf_counter()
                composer.post_message(key)
                next_key = now + key_every
            await asyncio.sleep(
                0.25 if now < next_key - 0.25 else max(0.0, next_key - now)
            )
        elapsed = time.perf_counter() - started
        shown_ok = view.markdown.source == view.message.content == reply
        if not shown_ok:
            src, msg = view.markdown.source, view.message.content
            print(
                "MISMATCH",
                len(src),
                len(msg),
                len(reply),
                str(view.message.status),
                next(
                    (
                        i
                        for i, (a, b) in enumerate(zip(msg, reply, strict=False))
                        if a != b
                    ),
                    None,
                ),
            )
    return {
        "samples": samples,
        "latencies": latencies,
        "elapsed": elapsed,
        "chars": len(reply),
        "shown_equals_stored": shown_ok,
    }


def received_length(view) -> int:  # type: ignore[no-untyped-def]
    """Characters of the reply received by the view: shown plus pending."""
    return len(view.markdown.source) + sum(map(len, view._pending))


def cpu_per_chunk(
    samples: list[tuple[float, float, int]], lo: float, hi: float, total: int
) -> float:
    """CPU ms per token (4 chars) while the received length is in [lo, hi)·total."""
    window = [s for s in samples if lo * total <= s[2] < hi * total]
    if len(window) < 2:
        return float("nan")
    cpu = window[-1][1] - window[0][1]
    chunks = (window[-1][2] - window[0][2]) / 4
    return 1000 * cpu / chunks if chunks else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=600.0, help="tokens per second")
    parser.add_argument(
        "--chunk-tokens",
        type=int,
        default=2,
        help="tokens (4 characters each) per SSE chunk",
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / ".work" / "stream.json"))
    parser.add_argument(
        "--flush-hz",
        type=float,
        default=0.0,
        help="override the 10 Hz flush rate (A/B runs)",
    )
    opts = parser.parse_args()

    from grizz_tui.tui.widgets import message_view

    if opts.flush_hz:
        message_view.FLUSH_INTERVAL = 1 / opts.flush_hz
    home = Path(tempfile.mkdtemp(prefix="grizz-stream-"))
    os.environ.update(
        {
            "GRIZZ_HOME": str(home),
            "GRIZZ_NO_KEYRING": "1",
            "OPENAI_API_KEY": "bench",
            "GRIZZ_MODEL": "bench",
            "GRIZZ_TOOLS": "false",
        }
    )
    reply = make_reply(opts.tokens)
    (home / "reply.md").write_text(reply, encoding="utf-8")
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            SERVER,
            str(home / "reply.md"),
            str(opts.chunk_tokens / opts.rate),
            str(4 * opts.chunk_tokens),
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = server.stdout.readline().strip()  # type: ignore[union-attr]
        result = asyncio.run(run(reply, base_url, key_every=0.2))
    finally:
        server.stdin.close()  # type: ignore[union-attr]
        server.wait(timeout=10)

    samples = result["samples"]  # type: ignore[assignment]
    lat = sorted(result["latencies"])  # type: ignore[arg-type]
    # 2-12 % and 88-98 %: the first window must not include the wait for the
    # first token, nor the last the final full render.
    start = cpu_per_chunk(samples, 0.02, 0.12, len(reply))
    end = cpu_per_chunk(samples, 0.88, 0.98, len(reply))
    rate = len(reply) / 4 / result["elapsed"]  # type: ignore[operator]
    print(
        f"reply: {len(reply):,} chars ≈ {len(reply) // 4:,} tokens in "
        f"{result['elapsed']:.1f} s ({rate:.0f} tokens/s delivered)"
    )
    print(
        f"CPU per token: early {start:.3f} ms, late {end:.3f} ms "
        f"(end/start {end / start:.2f})"
    )
    print(
        f"key presses during the stream: n={len(lat)}"
        f" p50 {1000 * statistics.median(lat):.1f} ms"
        f" p95 {1000 * lat[int(0.95 * (len(lat) - 1))]:.1f} ms"
        f" max {1000 * lat[-1]:.1f} ms"
    )
    print(f"shown == stored after the stream: {result['shown_equals_stored']}")
    Path(opts.out).parent.mkdir(parents=True, exist_ok=True)
    Path(opts.out).write_text(
        json.dumps({**result, "cpu_ms_start": start, "cpu_ms_end": end})
    )


if __name__ == "__main__":
    main()
