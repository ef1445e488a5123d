"""Cold start of the app to its first interactive frame: Grizz vs Elia vs the floor.

Side by side, interleaved, in one run, on pseudo-terminals (100x30):

- floor: `python -c "import textual.app"` (process start to exit), in Grizz's
  venv (textual 8.2.8) and in Elia's venv (textual 0.79.1);
- Grizz: `python -m grizz_tui` with a 10,000-message database (250 days x 40
  messages, today included): time until the composer is drawn ("first
  interactive frame") and until today's last message is on screen;
- Elia (PyPI `elia-chat` in its own venv under bench/.work/, see --elia)
  with 10,000 messages in 250 chats: time until its home screen with the
  prompt box is drawn, and until the newest chat's title is listed.

Times run from `Popen` to the first output containing the marker text
(escape sequences stripped). Nothing contacts the network: Grizz points at an
unused localhost URL, Elia never sends.

    python -m venv bench/.work/elia-venv
    bench/.work/elia-venv/bin/pip install elia-chat
    .venv/bin/python bench/startup.py --runs 9
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import re
import select
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / ".work"
CSI = re.compile(
    rb"\x1b(\[[0-9;?<>=$]*[ -/]*[@-~]|\][^\x07]*\x07|[()][0-9A-Za-z]|[=>])"
)
DAYS = 250
PER_DAY = 40


def seed_grizz(home: Path, messages: int) -> str:
    """A Grizz database with `messages` messages; returns today's last text."""
    sys.path.insert(0, str(ROOT))
    os.environ["GRIZZ_HOME"] = str(home)
    import datetime as dt

    from grizz_core import days
    from grizz_core.domain import Role
    from grizz_tui.store import conversations as conv
    from grizz_tui.store.db import open_database

    db = open_database(home / "grizz.db")
    today = dt.date.fromisoformat(days.today())
    per_day = max(1, messages // DAYS)
    last = ""
    for d in range(DAYS):
        day = (today - dt.timedelta(days=d)).isoformat()
        conversation = conv.ensure_conversation(db, day, "UTC")
        for i in range(per_day):
            role = Role.USER if i % 2 == 0 else Role.ASSISTANT
            text = f"Day {day} message {i}: " + "a few words about the day " * 6
            if d == 0 and i == per_day - 1:
                text = "zebra-last-of-today " + text
                last = "zebra-last-of-today"
            conv.add_message(
                db, conversation_id=conversation.id, role=role, content=text
            )
    db.close()
    return last


ELIA_SCHEMA = """
CREATE TABLE system_prompt (id INTEGER NOT NULL, title VARCHAR NOT NULL,
  prompt VARCHAR NOT NULL, created_at DATETIME DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (id));
CREATE TABLE chat (id INTEGER NOT NULL, model VARCHAR NOT NULL, title VARCHAR,
  started_at DATETIME DEFAULT CURRENT_TIMESTAMP, archived BOOLEAN NOT NULL,
  PRIMARY KEY (id));
CREATE TABLE message (id INTEGER NOT NULL, chat_id INTEGER, role VARCHAR NOT NULL,
  content VARCHAR NOT NULL, timestamp DATETIME DEFAULT CURRENT_TIMESTAMP, meta JSON,
  parent_id INTEGER, model VARCHAR, PRIMARY KEY (id),
  FOREIGN KEY(chat_id) REFERENCES chat (id),
  FOREIGN KEY(parent_id) REFERENCES message (id));
"""


def seed_elia(data_home: Path, messages: int) -> str:
    """Elia's database (its own schema) with `messages` messages in 250 chats."""
    path = data_home / "elia" / "elia.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.executescript(ELIA_SCHEMA)
    per_chat = max(1, messages // DAYS)
    message_id = 0
    for chat in range(DAYS):
        started = f"2025-01-01 00:{chat // 60:02d}:{chat % 60:02d}"
        db.execute(
            "INSERT INTO chat (id, model, title, started_at, archived)"
            " VALUES (?, ?, ?, ?, 0)",
            [chat + 1, "gpt-4o", f"zebra-chat-{chat}", started],
        )
        for i in range(per_chat):
            message_id += 1
            db.execute(
                "INSERT INTO message (id, chat_id, role, content, timestamp, meta,"
                " model) VALUES (?, ?, ?, ?, ?, '{}', 'gpt-4o')",
                [
                    message_id,
                    chat + 1,
                    "user" if i % 2 == 0 else "assistant",
                    f"Chat {chat} message {i}: " + "a few words about the day " * 6,
                    started,
                ],
            )
    db.commit()
    db.close()
    return f"zebra-chat-{DAYS - 1}"


def time_markers(
    args: list[str], env: dict[str, str], markers: list[str], timeout: float = 30.0
) -> list[float]:
    """Seconds from spawn until each marker appears on the terminal."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    start = time.perf_counter()
    process = subprocess.Popen(
        args,
        stdin=child,
        stdout=child,
        stderr=child,
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    os.close(child)
    found: dict[str, float] = {}
    screen = bytearray()
    try:
        while len(found) < len(markers) and time.perf_counter() - start < timeout:
            ready, _, _ = select.select([main], [], [], 0.05)
            if not ready:
                continue
            try:
                screen += os.read(main, 1 << 16)
            except OSError:
                break
            now = time.perf_counter() - start
            text = CSI.sub(b"", bytes(screen)).decode("utf-8", "replace")
            for marker in markers:
                if marker not in found and marker in text:
                    found[marker] = now
    finally:
        process.kill()
        process.wait()
        os.close(main)
    missing = [m for m in markers if m not in found]
    if missing:
        raise RuntimeError(f"{args[0]}: never showed {missing}")
    return [found[m] for m in markers]


def time_process(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, env=env, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--elia", default=str(WORK / "elia-venv"))
    parser.add_argument("--out", default=str(WORK / "startup.json"))
    opts = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="grizz-bench-"))
    grizz_home = tmp / "grizz"
    grizz_home.mkdir()
    grizz_last = seed_grizz(grizz_home, opts.messages)
    elia_last = seed_elia(tmp / "elia-data", opts.messages)

    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("GRIZZ_", "OPENAI_"))
    }
    base["TERM"] = "xterm-256color"
    grizz_env = {
        **base,
        "GRIZZ_HOME": str(grizz_home),
        "GRIZZ_NO_KEYRING": "1",
        "OPENAI_BASE_URL": "http://localhost:9/v1",
        "GRIZZ_MODEL": "bench",
    }
    elia_env = {
        **base,
        "XDG_DATA_HOME": str(tmp / "elia-data"),
        "XDG_CONFIG_HOME": str(tmp / "elia-config"),
    }
    grizz_python = str(ROOT / ".venv" / "bin" / "python")
    elia_bin = Path(opts.elia) / "bin"

    results: dict[str, list[float]] = {
        k: []
        for k in (
            "floor_grizz_venv",
            "floor_elia_venv",
            "grizz_first_frame",
            "grizz_today_shown",
            "elia_first_frame",
            "elia_history_shown",
        )
    }
    time_markers(
        [grizz_python, "-m", "grizz_tui"], grizz_env, ["Write to Grizz"]
    )  # warm
    time_markers([str(elia_bin / "elia")], elia_env, ["History ("])  # warm (db cache)
    for _ in range(opts.runs):
        results["floor_grizz_venv"].append(
            time_process([grizz_python, "-c", "import textual.app"], base)
        )
        results["floor_elia_venv"].append(
            time_process([str(elia_bin / "python"), "-c", "import textual.app"], base)
        )
        first, shown = time_markers(
            [grizz_python, "-m", "grizz_tui"], grizz_env, ["Write to Grizz", grizz_last]
        )
        results["grizz_first_frame"].append(first)
        results["grizz_today_shown"].append(shown)
        first, shown = time_markers(
            [str(elia_bin / "elia")], elia_env, ["Enter your m", elia_last]
        )
        results["elia_first_frame"].append(first)
        results["elia_history_shown"].append(shown)

    medians = {k: statistics.median(v) for k, v in results.items()}
    floor = medians["floor_grizz_venv"]
    print(f"{opts.messages:,} messages, {opts.runs} interleaved runs, medians (s):")
    for key, value in medians.items():
        print(f"  {key:22} {value:6.3f}   {value / floor:4.2f}x floor")
    Path(opts.out).write_text(
        json.dumps({"runs": results, "medians": medians}, indent=1)
    )


if __name__ == "__main__":
    main()
