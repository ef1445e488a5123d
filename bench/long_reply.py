"""Long replies: render time, key latency, loop stalls, resize and quit.

A ~3,000-token Markdown reply (headings, prose, lists, code blocks, tables;
the text of `bench/stream_render.py`) is streamed by the fake
OpenAI-compatible server (a separate process) in ~0.4 s, into the real app
running headless at 100x40, with 0, 1 or 10 such replies already on today's
page. Measured per run:

- render: from the server's last chunk to the reply fully rendered (the
  stream stopped, the widget shows the stored text, and one refresh after);
- keys: a key press posted to the app (as the terminal driver does) every
  20 ms from send until rendered, and the delay until the composer
  dispatches it (p50/p95/max);
- stalls: an asyncio task sleeping 5 ms records how late it wakes (p99/max),
  from send until rendered;
- resize: 100x40 → 80x30 → 100x40, each until laid out and drawn (the
  slower of the two);
- quit: `app.exit()` until the app has shut down.

Each (checkout, page) pair runs in its own process, interleaved, so another
checkout (e.g. a `git worktree` of the previous commit) is measured side by
side in the same session:

    .venv/bin/python bench/long_reply.py --runs 3 --compare ../grizz-before

Figures are medians over the runs (p95/p99 are per run, then the median).
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
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
KEY_EVERY = 0.02
STALL_TICK = 0.005

SERVER = """
import sys, time
from tests.fakes import openai_server as fake_mod
from tests.fakes.openai_server import FakeOpenAI, Text

end_chunks = fake_mod._Handler._end_chunks

def stamped(self):  # the last chunk is out: note the wall time
    end_chunks(self)
    with open(sys.argv[4], "a") as out:
        out.write(f"{time.time()}\\n")

fake_mod._Handler._end_chunks = stamped
text = open(sys.argv[1], encoding="utf-8").read()
fake = FakeOpenAI(default=Text(text, chunk=int(sys.argv[3]), delay=float(sys.argv[2])))
fake.start()
print(fake.base_url, flush=True)
sys.stdin.read()
fake.stop()
"""


def make_reply(tokens: int) -> str:
    sys.path.insert(0, str(HERE))
    from stream_render import make_reply as long_markdown

    return long_markdown(tokens)


def seed(home: Path, reply: str, page: int) -> None:
    """Today's page with `page` exchanges, each answered by a long reply."""
    from grizz_core import days
    from grizz_core.domain import Role
    from grizz_tui.store import conversations as conv
    from grizz_tui.store.db import open_database

    db = open_database(home / "grizz.db")
    conversation = conv.ensure_conversation(db, days.today(), "UTC")
    for i in range(page):
        for role, text in ((Role.USER, f"question {i}"), (Role.ASSISTANT, reply)):
            conv.add_message(
                db, conversation_id=conversation.id, role=role, content=text
            )
    db.close()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]


async def refreshed(app: Any) -> None:
    """The screen's next refresh has happened."""
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    app.call_after_refresh(lambda: done.done() or done.set_result(None))
    await done


async def settled(app: Any) -> None:
    """Every queue processed, then one more refresh of the screen.

    (`Pilot.pause` walks every widget: not while stalls are being measured.)
    """
    from textual.pilot import Pilot

    await Pilot(app).pause()
    await refreshed(app)


class Keys:
    """Key presses posted to the app, and when the composer dispatched each."""

    def __init__(self) -> None:
        self.posted: dict[int, float] = {}
        self.handled: dict[int, float] = {}
        self.sent: list[object] = []  # alive, so that no id is reused

    def hook(self, message: object) -> None:
        # A key goes app → screen → focused widget as one object: the last
        # dispatch is the composer's.
        if id(message) in self.posted:
            self.handled[id(message)] = time.perf_counter()

    def press(self, app: Any) -> None:
        from textual import events

        key = events.Key("x", "x")
        self.posted[id(key)] = time.perf_counter()
        self.sent.append(key)
        app.post_message(key)  # as the terminal driver does

    def latencies_ms(self, until: float) -> list[float]:
        """Each key's delay; one never handled counts until `until`."""
        return [1000 * (self.handled.get(k, until) - t) for k, t in self.posted.items()]


class Stalls:
    """How late a task sleeping `STALL_TICK` wakes: the event loop's stalls."""

    def __init__(self) -> None:
        self.lateness: list[float] = []
        self.running = True
        self.task = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        while self.running:
            due = time.perf_counter() + STALL_TICK
            await asyncio.sleep(STALL_TICK)
            self.lateness.append(max(0.0, time.perf_counter() - due))

    async def stop(self) -> list[float]:
        self.running = False
        await self.task
        return [1000 * s for s in self.lateness]


async def stream_reply(app: Any, reply: str, keys: Keys) -> Any:
    """Send, press keys every `KEY_EVERY` until the reply is fully rendered."""
    from textual import events

    chat = app.chat
    before = {v.message.id for v in chat.conversation.views}
    chat.composer.insert("write me something long")
    chat.composer.post_message(events.Key("enter", None))
    next_key = time.perf_counter()
    view = None
    while True:
        if time.perf_counter() >= next_key:
            keys.press(app)
            next_key = time.perf_counter() + KEY_EVERY
        if view is None:
            last = chat.conversation.last_view("assistant")
            if last is not None and last.message.id not in before:
                view = last
        elif not chat.replying and view.shown_source == reply:
            await refreshed(app)
            return view
        await asyncio.sleep(0.002)


async def resize(app: Any, width: int, height: int) -> float:
    """Seconds from a terminal resize until the screen is laid out and drawn
    at the new size (and drawn once more: what the resize culled or uncovered).

    (Not `Pilot.resize_terminal`: its `pause` posts a callback to every widget,
    which costs more than the resize with thousands of Markdown blocks.)
    """
    from textual.events import Resize
    from textual.geometry import Size

    size = Size(width, height)
    conversation = app.chat.conversation
    started = time.perf_counter()
    app._driver._size = size  # the headless driver's terminal size
    app.post_message(Resize(size, size))
    while conversation.outer_size.width != width:  # laid out at the new size
        await asyncio.sleep(0.001)
    await refreshed(app)
    await refreshed(app)
    return time.perf_counter() - started


async def measure(reply: str, stamps: Path, profile: str = "") -> dict[str, Any]:
    from grizz_tui.tui.app import make_app

    keys = Keys()
    app = make_app(animate=False)
    result: dict[str, Any] = {}
    async with app.run_test(size=(100, 40), message_hook=keys.hook):
        while not app.chat.day:
            await asyncio.sleep(0.02)
        await asyncio.sleep(1.0)  # the warm-up import
        await settled(app)
        profiler = None
        if profile:  # send → rendered → resized (pip install pyinstrument)
            from pyinstrument import Profiler

            profiler = Profiler(async_mode="disabled")
            profiler.start()
        stalls = Stalls()
        view = await stream_reply(app, reply, keys)
        result["render_s"] = time.time() - float(stamps.read_text().split()[-1])
        rendered = time.perf_counter()
        result["stall_ms"] = await stalls.stop()
        await settled(app)
        result["key_ms"] = keys.latencies_ms(until=rendered)
        result["shown_ok"] = view.shown_source == view.message.content == reply
        result["resize_s"] = max(
            [await resize(app, 80, 30), await resize(app, 100, 40)]
        )
        if profiler is not None:
            profiler.stop()
            Path(profile).write_text(profiler.output_text(show_all=True))
        started = time.perf_counter()
        app.exit()
    result["quit_s"] = time.perf_counter() - started
    return result


def child(opts: argparse.Namespace) -> None:
    """One measured run (in this process), against the checkout on sys.path."""
    home = Path(tempfile.mkdtemp(prefix="grizz-long-"))
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
    seed(home, reply, opts.page)
    (home / "reply.md").write_text(reply, encoding="utf-8")
    stamps = home / "last_chunk"
    chunks = max(1, len(reply) // opts.chunk)
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            SERVER,
            str(home / "reply.md"),
            str(opts.seconds / chunks),
            str(opts.chunk),
            str(stamps),
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdin is not None
        os.environ["OPENAI_BASE_URL"] = server.stdout.readline().strip()
        result = asyncio.run(measure(reply, stamps, opts.profile))
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=10)
    print(json.dumps(result))


def run_child(root: Path, page: int, opts: argparse.Namespace) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    command = [sys.executable, __file__, "--child", "--page", str(page)]
    command += ["--tokens", str(opts.tokens), "--seconds", str(opts.seconds)]
    command += ["--chunk", str(opts.chunk)]
    out = subprocess.run(
        command, cwd=root, env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        sys.exit(f"run failed in {root} (page {page}):\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def summary(runs: list[dict[str, Any]]) -> dict[str, float]:
    def med(f: Any) -> float:
        return statistics.median(f(r) for r in runs)

    return {
        "render_s": med(lambda r: r["render_s"]),
        "key_p50_ms": med(lambda r: pct(r["key_ms"], 0.5)),
        "key_p95_ms": med(lambda r: pct(r["key_ms"], 0.95)),
        "key_max_ms": med(lambda r: max(r["key_ms"], default=float("nan"))),
        "keys": med(lambda r: len(r["key_ms"])),
        "stall_p99_ms": med(lambda r: pct(r["stall_ms"], 0.99)),
        "stall_max_ms": med(lambda r: max(r["stall_ms"], default=float("nan"))),
        "resize_s": med(lambda r: r["resize_s"]),
        "quit_s": med(lambda r: r["quit_s"]),
        "shown_ok": float(all(r["shown_ok"] for r in runs)),
    }


COLUMNS = [
    ("render_s", "render s", "{:.2f}"),
    ("key_p50_ms", "key p50", "{:.0f}"),
    ("key_p95_ms", "key p95", "{:.0f}"),
    ("key_max_ms", "key max", "{:.0f}"),
    ("stall_p99_ms", "stall p99", "{:.0f}"),
    ("stall_max_ms", "stall max", "{:.0f}"),
    ("resize_s", "resize s", "{:.2f}"),
    ("quit_s", "quit s", "{:.2f}"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=0.4, help="stream length")
    parser.add_argument("--chunk", type=int, default=40, help="characters a chunk")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pages", default="0,1,10", help="long replies on the page")
    parser.add_argument("--compare", default="", help="another checkout to run")
    parser.add_argument("--out", default=str(HERE / ".work" / "long_reply.json"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--profile", default="", help="(with --child) a text profile")
    parser.add_argument("--page", type=int, default=0, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.child:
        child(opts)
        return
    roots = {"this": ROOT}
    if opts.compare:
        roots = {"before": Path(opts.compare).resolve(), **roots}
    pages = [int(p) for p in opts.pages.split(",")]
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for _ in range(opts.runs):
        for page in pages:
            for name, root in roots.items():
                runs.setdefault((name, page), []).append(run_child(root, page, opts))
    head = f"{'checkout':<8} {'page':>4} " + " ".join(f"{c[1]:>9}" for c in COLUMNS)
    print(head + "  (ms unless s)")
    table = {}
    for (name, page), results in runs.items():
        row = summary(results)
        table[f"{name}/{page}"] = row
        cells = " ".join(f"{c[2].format(row[c[0]]):>9}" for c in COLUMNS)
        ok = "" if row["shown_ok"] else "  SHOWN != STORED"
        print(f"{name:<8} {page:>4} {cells}{ok}")
    Path(opts.out).parent.mkdir(parents=True, exist_ok=True)
    Path(opts.out).write_text(json.dumps({"summary": table, "runs": str(runs)}))


if __name__ == "__main__":
    main()
