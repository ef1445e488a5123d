"""Long replies as a user sees them: the real app on a pseudo-terminal.

`bench/long_reply.py` measures inside a headless app (and the event loop's
stalls); this one measures from outside, on a 100x40 pty, what a user
sees, with the same reply (~3,000 tokens of Markdown ending in a marker) from
the same fake server (~0.4 s), with 0, 1 or 10 such replies on the page:

- render: from the server's last chunk until the marker is drawn;
- keys: from send until 1 s after the marker, a `~` is typed as soon as the
  previous one was echoed (at most every 30 ms); its latency is the time
  until the terminal shows it. A key not shown within 2 s is *lost* (typed
  into the composer and wiped: issue 13);
- resize: the pty resized to 80x30 (SIGWINCH) and back, each until the
  status bar is drawn again (the redraw at the new size reaches the bottom);
- quit: Ctrl+Q until the process has exited.

    .venv/bin/python bench/long_reply_tty.py --runs 3 --compare ../grizz-before
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import select
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from long_reply import SERVER, make_reply, pct  # noqa: E402

MARKER = "zebra-end-of-reply"
KEY = b"~"
LOST_AFTER = 2.0


class Terminal:
    """A process on a pty, and what it has written."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.main, child = pty.openpty()
        self.resize(100, 40)
        self.process = subprocess.Popen(
            args, stdin=child, stdout=child, stderr=child, env=env, cwd=cwd,
            start_new_session=True,
        )  # fmt: skip
        os.close(child)

    def resize(self, width: int, height: int) -> None:
        size = struct.pack("HHHH", height, width, 0, 0)
        fcntl.ioctl(self.main, termios.TIOCSWINSZ, size)

    def read(self, timeout: float) -> bytes:
        ready, _, _ = select.select([self.main], [], [], max(0.0, timeout))
        if not ready:
            return b""
        try:
            return os.read(self.main, 1 << 16)
        except OSError:
            return b""

    def wait_for(self, marker: bytes, timeout: float = 60.0) -> float:
        seen = b""
        deadline = time.perf_counter() + timeout
        while marker not in seen[-(len(marker) + 65536) :]:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"never showed {marker!r}")
            seen += self.read(deadline - time.perf_counter())
        return time.perf_counter()

    def drain(self, seconds: float) -> None:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            self.read(deadline - time.perf_counter())

    def exit_time(self, started: float, timeout: float = 60.0) -> float:
        """Seconds from `started` until the process exits (reading its output:
        a full pty would block its last writes)."""
        while self.process.poll() is None:
            if time.perf_counter() - started > timeout:
                raise RuntimeError("the app did not quit")
            self.read(0.005)
        return time.perf_counter() - started

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        os.close(self.main)


def type_keys(term: Terminal) -> tuple[list[float], int, float | None]:
    """Type `KEY` while the reply renders: latencies, lost keys, marker time."""
    latencies: list[float] = []
    lost = 0
    marker_at: float | None = None
    tail = b""
    while marker_at is None or time.perf_counter() - marker_at < 1.0:
        typed = time.perf_counter()
        os.write(term.main, KEY)
        while True:
            chunk = term.read(0.005)
            tail = (tail + chunk)[-4096:]
            if marker_at is None and MARKER.encode() in tail:
                marker_at = time.perf_counter()
            if KEY in chunk:
                latencies.append(time.perf_counter() - typed)
                break
            if time.perf_counter() - typed > LOST_AFTER:
                lost += 1
                break
        term.drain(max(0.0, 0.03 - (time.perf_counter() - typed)))
    return latencies, lost, marker_at


def child(root: Path, page: int, opts: argparse.Namespace) -> dict[str, Any]:
    """One run of the app in `root`, with `page` long replies on today's page."""
    home = Path(tempfile.mkdtemp(prefix="grizz-tty-"))
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("GRIZZ_", "OPENAI"))
    }
    env.update(
        GRIZZ_HOME=str(home), GRIZZ_NO_KEYRING="1", OPENAI_API_KEY="bench",
        GRIZZ_MODEL="bench", GRIZZ_TOOLS="false", TERM="xterm-256color",
        PYTHONPATH=str(root),
    )  # fmt: skip
    seed = f"import long_reply as b; from pathlib import Path; b.seed(Path({str(home)!r}), b.make_reply({opts.tokens}), {page})"  # noqa: E501
    seed_env = {**env, "PYTHONPATH": f"{root}{os.pathsep}{HERE}"}
    subprocess.run([sys.executable, "-c", seed], env=seed_env, cwd=root, check=True)
    reply = make_reply(opts.tokens) + f"\n\n{MARKER}\n"
    (home / "reply.md").write_text(reply, encoding="utf-8")
    stamps = home / "last_chunk"
    delay = opts.seconds / max(1, len(reply) // opts.chunk)
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(home / "reply.md"), str(delay),
         str(opts.chunk), str(stamps)],
        cwd=root, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert server.stdout is not None and server.stdin is not None
    env["OPENAI_BASE_URL"] = server.stdout.readline().strip()
    term = Terminal([sys.executable, "-m", "grizz_tui"], env, root)
    try:
        term.wait_for(b"Write to Grizz")
        term.drain(3.0)  # the day, the warm-up
        os.write(term.main, b"write me something long")
        term.drain(0.3)
        os.write(term.main, b"\r")
        latencies, lost, marker_at = type_keys(term)
        last_chunk = float(stamps.read_text().split()[-1])
        assert marker_at is not None
        render = time.time() - (time.perf_counter() - marker_at) - last_chunk
        resizes = []
        for width, height in ((80, 30), (100, 40)):
            started = time.perf_counter()
            term.resize(width, height)
            os.killpg(term.process.pid, signal.SIGWINCH)
            # The status bar (bottom line) is drawn again only in a full
            # redraw at the new size.
            resizes.append(term.wait_for(b"Enter send", timeout=30) - started)
        started = time.perf_counter()
        os.write(term.main, b"\x11")  # Ctrl+Q
        quit_s = term.exit_time(started)
    finally:
        term.close()
        server.stdin.close()
        server.wait(timeout=10)
    return {
        "render_s": render,
        "key_ms": [1000 * k for k in latencies],
        "lost": lost,
        "resize_s": max(resizes),
        "quit_s": quit_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=0.4, help="stream length")
    parser.add_argument("--chunk", type=int, default=40, help="characters a chunk")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pages", default="0,1,10", help="long replies on the page")
    parser.add_argument("--compare", default="", help="another checkout to run")
    parser.add_argument("--out", default=str(HERE / ".work" / "long_reply_tty.json"))
    opts = parser.parse_args()
    roots = {"this": HERE.parent}
    if opts.compare:
        roots = {"before": Path(opts.compare).resolve(), **roots}
    runs: dict[str, list[dict[str, Any]]] = {}
    for _ in range(opts.runs):
        for page in (int(p) for p in opts.pages.split(",")):
            for name, root in roots.items():
                runs.setdefault(f"{name}/{page}", []).append(child(root, page, opts))
    print(f"{'run':<10} {'render s':>8} {'key p50':>8} {'key p95':>8} {'key max':>8}"
          f" {'lost':>5} {'resize s':>8} {'quit s':>7}   (ms unless s)")  # fmt: skip
    table = {}
    for key, results in runs.items():
        row = {
            "render_s": statistics.median(r["render_s"] for r in results),
            "key_p50": statistics.median(pct(r["key_ms"], 0.5) for r in results),
            "key_p95": statistics.median(pct(r["key_ms"], 0.95) for r in results),
            "key_max": statistics.median(max(r["key_ms"], default=0) for r in results),
            "lost": sum(r["lost"] for r in results),
            "resize_s": statistics.median(r["resize_s"] for r in results),
            "quit_s": statistics.median(r["quit_s"] for r in results),
        }
        table[key] = row
        print(f"{key:<10} {row['render_s']:8.2f} {row['key_p50']:8.0f}"
              f" {row['key_p95']:8.0f} {row['key_max']:8.0f} {row['lost']:5d}"
              f" {row['resize_s']:8.2f} {row['quit_s']:7.2f}")  # fmt: skip
    Path(opts.out).parent.mkdir(parents=True, exist_ok=True)
    Path(opts.out).write_text(json.dumps({"summary": table, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
