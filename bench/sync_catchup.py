"""New-device catch-up: `grizz sync` into an empty home from a full server.

The server (Redis, gateway; SQLite store) runs as real processes; its store
is filled directly with MESSAGES messages in days of 100 and NOTES notes of
one user. Then `grizz login` and a timed `grizz sync` run as their own
processes in an empty GRIZZ_HOME, over loopback. Reports wall time and the
sync process's peak resident memory (ru_maxrss from wait4).

    python bench/sync_catchup.py [--messages 100000] [--notes 1000]

Targets (issue 12): ≤ 10 s and ≤ 200 MB for 100,000 messages + 1,000 notes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROFILE = (
    ["-m", "cProfile", "-o", os.environ["BENCH_PROFILE"]]
    if os.environ.get("BENCH_PROFILE")
    else []
)
sys.path.insert(0, str(ROOT))

from bench.server_common import Server  # noqa: E402
from tests.sync.fill import fill, history  # noqa: E402


async def _fill(server: Server, messages: int, notes: int) -> float:
    from grizz_server.store import ServerStore

    store = await ServerStore.open(server.db_url)
    try:
        user = await store.get_user("user0")
        assert user is not None
        started = time.perf_counter()
        await fill(store.for_user(user.id), history(messages, notes))
        return time.perf_counter() - started
    finally:
        await store.close()


def _grizz(home: Path, *args: str, stdin: str = "") -> tuple[float, int, str]:
    """Run `grizz ARGS`: (seconds, peak RSS in KiB, stdout)."""
    env = {**os.environ, "GRIZZ_HOME": str(home), "GRIZZ_NO_KEYRING": "1"}
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, *PROFILE, "-m", "grizz_tui", *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(stdin)
    proc.stdin.close()
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"grizz {' '.join(args)} failed: {proc.stderr.read()}")  # type: ignore[union-attr]
    return elapsed, usage.ru_maxrss, out


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--notes", type=int, default=1_000)
    args = parser.parse_args()
    server = await Server(workers=0, text="x", chunk=1).start(users=1)
    try:
        filled = await _fill(server, args.messages, args.notes)
        print(f"filled the server store in {filled:.1f} s")
        home = Path(tempfile.mkdtemp(prefix="grizz-device-"))
        url = f"ws://127.0.0.1:{server.port}"
        _grizz(home, "login", url, stdin=server.tokens[0] + "\n")
        seconds, rss, out = _grizz(home, "sync")
        rows = args.messages + args.notes + (args.messages + 99) // 100
        print(f"grizz sync: {out.strip()}")
        print(
            f"{args.messages:,} messages + {args.notes:,} notes: {seconds:.2f} s "
            f"({rows / seconds:,.0f} rows/s), peak RSS {rss / 1024:.0f} MB"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
