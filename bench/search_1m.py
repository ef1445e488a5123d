"""`grizz search` over a generated 1,000,000-message database: latency percentiles.

Builds (once, cached under bench/.work/) a Grizz database with 1,000 days x
1,000 messages of Zipf-distributed words plus 2,000 memory notes, through the
real schema and FTS triggers, then times the store's `search()` (what `grizz
search` runs) for a mix of rare, medium and very common words and phrases.

    .venv/bin/python bench/search_1m.py            # build if needed, then measure
    .venv/bin/python bench/search_1m.py --messages 100000   # quicker
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from grizz_tui.store.db import open_database, writing  # noqa: E402
from grizz_tui.store.search import search  # noqa: E402

WORDS = [f"w{i}" for i in range(20_000)]
REAL = [
    "honey",
    "salmon",
    "river",
    "forest",
    "hike",
    "exam",
    "sister",
    "mom",
    "dad",
    "coffee",
    "tea",
    "rain",
    "sunny",
    "work",
    "meeting",
    "project",
    "deadline",
    "anxious",
    "happy",
    "tired",
    "sleep",
    "dream",
    "bear",
    "cave",
    "winter",
    "spring",
    "garden",
    "kayak",
    "lake",
    "pizza",
    "birthday",
    "party",
    "movie",
    "book",
    "guitar",
]


def build(path: Path, messages: int, per_day: int = 1000) -> None:
    rng = random.Random(42)
    vocab = REAL + WORDS
    weights = [1 / (rank + 1) for rank in range(len(vocab))]
    db = open_database(path)
    start = time.perf_counter()
    days = messages // per_day
    for d in range(days):
        day = f"{2020 + d // 365:04d}-{d % 365 // 28 + 1:02d}-{d % 28 + 1:02d}#{d}"
        conv_id = str(uuid.uuid5(uuid.NAMESPACE_URL, day))
        rows = []
        for i in range(per_day):
            words = rng.choices(vocab, weights, k=rng.randint(5, 40))
            ts = f"2026-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}.{d:06d}+00:00"
            rows.append(
                (
                    str(uuid.UUID(int=rng.getrandbits(128))),
                    conv_id,
                    "user" if i % 2 == 0 else "assistant",
                    " ".join(words),
                    ts,
                    ts,
                )
            )
        with writing(db):
            db.execute(
                "INSERT INTO conversations VALUES (?, ?, 'UTC', '', 't', 't')",
                [conv_id, day],
            )
            db.conn.executemany(
                "INSERT INTO messages (id, conversation_id, role, content, status,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, 'complete', ?, ?)",
                rows,
            )
        if d % 100 == 99:
            print(
                f"  {(d + 1) * per_day:,} messages, "
                f"{time.perf_counter() - start:.0f} s",
                flush=True,
            )
    with writing(db):
        for _ in range(2000):
            words = " ".join(rng.choices(vocab, weights, k=12))
            db.execute(
                "INSERT INTO memory (id, content, created_at, updated_at)"
                " VALUES (?, ?, 't', 't')",
                [str(uuid.uuid4()), words],
            )
    db.execute("DELETE FROM outbox")
    db.execute("PRAGMA optimize")
    db.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    path = ROOT / f"bench/.work/search-{args.messages}.db"
    if not path.exists():
        print(f"building {path} ...", flush=True)
        build(path, args.messages)
    db = open_database(path)
    total = db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    queries = {
        "rare word": ["w19000", "w15000", "w12345"],
        "medium word": ["w500", "w900", "kayak"],
        "very common word": ["honey", "salmon", "river"],
        "two words": ["honey salmon", "exam tired", "w50 w60"],
        "prefix (opt-in)": ["hon", "kay", "w19"],
    }
    print(f"{total:,} messages; {args.rounds} rounds per query; limit 20 hits")
    everything: list[float] = []  # the default, whole-word searches
    for label, texts in queries.items():
        times = []
        for _ in range(args.rounds):
            for text in texts:
                t0 = time.perf_counter()
                search(db, text, limit=20, prefix=label.startswith("prefix"))
                times.append((time.perf_counter() - t0) * 1000)
        if not label.startswith("prefix"):
            everything += times
        print(
            f"  {label:18s} p50 {statistics.median(times):6.1f} ms"
            f"   p95 {percentile(times, 0.95):6.1f} ms   max {max(times):6.1f} ms"
        )
    print(
        f"  {'all whole-word':18s} p50 {statistics.median(everything):6.1f} ms"
        f"   p95 {percentile(everything, 0.95):6.1f} ms"
    )
    cli = []
    for _ in range(5):
        t0 = time.perf_counter()
        subprocess.run(
            [str(Path(sys.executable).parent / "grizz"), "search", "honey"],
            env={"GRIZZ_DB": str(path), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            check=True,
        )
        cli.append((time.perf_counter() - t0) * 1000)
    print(
        f"  whole `grizz search honey` process: median {statistics.median(cli):.0f} ms"
    )


if __name__ == "__main__":
    main()
