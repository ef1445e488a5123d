"""Five years of history: first frame, day open, navigator and memory vs empty.

One run, side by side, interleaved:

- an empty database (schema only) and one of 1,825 days and 200,000 messages
  (~110 a day, ~1 kB each, built with `executemany` in one transaction through
  the app's own schema; cached under bench/.work/ and reused);
- first interactive frame of `python -m grizz_tui` on a pseudo-terminal
  (100x30; same method as bench/startup.py: spawn until "Write to Grizz");
- resident memory (VmRSS) of that process once today is shown and 1 s passed;
- opening a day: `Backend.read_day` for ~50 random days in a fresh process
  (p50/p95), and the calendar's month summary (`month_days`) for the same days;
  "old" is what the previous navigator read on opening (`list_days`, 365 days).

    .venv/bin/python bench/history_5y.py --runs 7
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pty
import random
import select
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.startup import CSI  # noqa: E402

WORK = ROOT / "bench" / ".work"
DAYS = 1825
MESSAGES = 200_000
WORDS = [
    "the",
    "heron",
    "came",
    "back",
    "to",
    "the",
    "pond",
    "and",
    "we",
    "talked",
    "about",
    "the",
    "week",
    "ahead",
]


def build(home: Path, days: int, messages: int) -> None:
    """A database of `days` days ending today with `messages` messages."""
    os.environ["GRIZZ_HOME"] = str(home)
    from grizz_core import days as core_days
    from grizz_core.domain import day_conversation_id
    from grizz_tui.store.db import open_database

    open_database(home / "grizz.db").close()  # the app's schema, migrated
    if not messages:
        return
    today = dt.date.fromisoformat(core_days.today())
    rng = random.Random(5)
    conn = sqlite3.connect(home / "grizz.db")
    per_day = messages // days
    with conn:
        conversations = []
        rows = []
        for d in range(days):
            day = (today - dt.timedelta(days=days - 1 - d)).isoformat()
            cid = day_conversation_id(day)
            stamp = f"{day}T09:00:00.000000+00:00"
            conversations.append((cid, day, "UTC", "", stamp, stamp))
            for i in range(per_day):
                text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 200)))
                at = f"{day}T09:{i // 60:02d}:{i % 60:02d}.000000+00:00"
                role = "user" if i % 2 == 0 else "assistant"
                rows.append((f"{cid}-{i}", cid, role, f"{day} #{i} {text}", at, at))
        conn.executemany(
            "INSERT INTO conversations (id, day, tz, title, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            conversations,
        )
        conn.executemany(
            "INSERT INTO messages (id, conversation_id, role, content, status,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, 'complete', ?, ?)",
            rows,
        )
    conn.close()


def first_frame(python: str, env: dict[str, str]) -> tuple[float, int]:
    """Seconds to the composer, and VmRSS (kB) 1 s after it."""
    main, child = pty.openpty()
    start = time.perf_counter()
    process = subprocess.Popen(
        [python, "-m", "grizz_tui"],
        stdin=child,
        stdout=child,
        stderr=child,
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    os.close(child)
    screen = bytearray()
    seen = 0.0
    try:
        while time.perf_counter() - start < 30:
            ready, _, _ = select.select([main], [], [], 0.05)
            if ready:
                screen += os.read(main, 1 << 16)
            if not seen and b"Write to Grizz" in CSI.sub(b"", bytes(screen)):
                seen = time.perf_counter() - start
                settle = time.perf_counter() + 1.0
            if seen and time.perf_counter() > settle:
                break
        status = Path(f"/proc/{process.pid}/status").read_text()
        rss = int(
            next(x for x in status.splitlines() if x.startswith("VmRSS")).split()[1]
        )
    finally:
        process.kill()
        process.wait()
        os.close(main)
    if not seen:
        raise RuntimeError("the composer never showed")
    return seen, rss


DAY_OPEN = r"""
import json, random, sys, time
from grizz_tui.config import load_settings
from grizz_tui.store.calendar import month_days
from grizz_tui.tui.backend import Backend
backend = Backend(load_settings())
t = time.perf_counter(); backend.open_store(); store = time.perf_counter() - t
days = [r["day"] for r in backend.db.query("SELECT day FROM conversations")]
rng = random.Random(int(sys.argv[1]))
opened, months = [], []
for day in [rng.choice(days or ["2026-01-01"]) for _ in range(50)]:
    t = time.perf_counter(); backend.read_day(day)
    opened.append(time.perf_counter() - t)
    t = time.perf_counter(); month_days(backend.db, day[:7])
    months.append(time.perf_counter() - t)
from grizz_tui.store.conversations import list_days
old = []
for _ in range(5):
    t = time.perf_counter(); list_days(backend.db, limit=365)
    old.append(time.perf_counter() - t)
print(json.dumps({"open": opened, "month": months, "store": [store], "old": old}))
"""


def day_figures(python: str, env: dict[str, str]) -> dict[str, list[float]]:
    """open_store, then read_day and month_days of 50 random days (seconds)."""
    out = subprocess.run(
        [python, "-c", DAY_OPEN, "1"], env=env, capture_output=True, text=True
    )
    if out.returncode:
        raise RuntimeError(out.stderr)
    result: dict[str, list[float]] = json.loads(out.stdout)
    return result


def p95(values: list[float]) -> float:
    return sorted(values)[int(0.95 * (len(values) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--python", default=sys.executable)
    opts = parser.parse_args()
    homes = {"empty": Path(tempfile.mkdtemp(prefix="grizz-empty-")), "5y": WORK / "5y"}
    build(homes["empty"], DAYS, 0)
    if not (homes["5y"] / "grizz.db").exists():
        homes["5y"].mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        build(homes["5y"], DAYS, MESSAGES)
        print(f"built the 5-year database in {time.perf_counter() - started:.1f} s")
    size = (homes["5y"] / "grizz.db").stat().st_size / 1e6
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("GRIZZ_", "OPENAI_"))
    }
    base |= {"TERM": "xterm-256color", "GRIZZ_NO_KEYRING": "1", "PYTHONPATH": str(ROOT)}
    base |= {"OPENAI_BASE_URL": "http://localhost:9/v1", "GRIZZ_MODEL": "bench"}
    env = {k: {**base, "GRIZZ_HOME": str(h)} for k, h in homes.items()}
    res: dict[str, list[float]] = {
        f"{k}_{m}": [] for k in homes for m in ("frame", "rss")
    }
    for key in homes:
        first_frame(opts.python, env[key])  # warm the page cache
    for _ in range(opts.runs):
        for key in homes:
            frame, rss = first_frame(opts.python, env[key])
            res[f"{key}_frame"].append(frame)
            res[f"{key}_rss"].append(rss / 1024)
    day = {key: day_figures(opts.python, env[key]) for key in homes}
    med = {k: statistics.median(v) for k, v in res.items()}
    print(f"5-year database: {size:.0f} MB; {opts.runs} interleaved runs, medians")
    ms = {k: v * 1000 for k, v in med.items()}
    print(
        f"  first frame  empty {ms['empty_frame']:6.0f} ms   5y {ms['5y_frame']:6.0f}"
        f" ms   diff {ms['5y_frame'] - ms['empty_frame']:+.0f} ms"
    )
    print(
        f"  RSS          empty {med['empty_rss']:6.1f} MB   5y {med['5y_rss']:6.1f}"
        f" MB   diff {med['5y_rss'] - med['empty_rss']:+.1f} MB"
    )
    low = {k: min(v) * 1000 for k, v in res.items() if k.endswith("frame")}
    print(
        f"  first frame (fastest) empty {low['empty_frame']:4.0f} ms"
        f"   5y {low['5y_frame']:4.0f} ms"
    )
    for key in homes:
        print(f"  {key:5} open_store {day[key]['store'][0] * 1000:6.0f} ms")
        for name in ("open", "month", "old"):
            values = [v * 1000 for v in day[key][name]]
            print(
                f"  {key:5} {name:5} a day (50 random)  p50"
                f" {statistics.median(values):6.1f} ms   p95 {p95(values):6.1f} ms"
            )
    (WORK / "history_5y.json").write_text(json.dumps({"runs": res, "day": day}))


if __name__ == "__main__":
    main()
