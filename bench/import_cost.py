"""Cold import cost of the `grizz ask` path, and the heaviest modules on it.

Runs `python -X importtime` on the same code path as `grizz ask "hi"` (in a
plain `pip install .` venv, as a user has it) several times and reports the
median total plus the top-level packages by cumulative import time. Also
times `import openai` vs `import httpx` — the measurement behind using httpx
directly in grizz_core/providers/openai_compat.py.

    .venv/bin/python bench/import_cost.py
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")
PROBE = (
    "import sys\n"
    "from grizz_tui.cli import main\n"
    "sys.argv = ['grizz', 'ask', 'hi']\n"
    "main()\n"
)


def importtime(python: str, code: str, env: dict[str, str]) -> dict[str, int]:
    done = subprocess.run(
        [python, "-X", "importtime", "-c", code],
        env=env,
        capture_output=True,
        text=True,
    )
    packages: dict[str, int] = defaultdict(int)
    for match in LINE.finditer(done.stderr):
        self_us, _, _, name = match.groups()
        packages[name.split(".")[0]] += int(self_us)  # self time, by top package
    return packages


def wall(python: str, code: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([python, "-c", code], check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--python", default=str(ROOT / "bench/.work/grizz-venv/bin/python")
    )
    parser.add_argument("--sdk-python", default=str(ROOT / ".venv/bin/python"))
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="grizz-import-")
    env = {
        **os.environ,
        "GRIZZ_HOME": home,
        "GRIZZ_NO_KEYRING": "1",
        "OPENAI_API_KEY": "sk-x",
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",  # refused at once: no network
        "GRIZZ_MAX_RETRIES": "0",
    }
    importtime(args.python, PROBE, env)  # first run creates the database
    runs = [importtime(args.python, PROBE, env) for _ in range(args.runs)]
    totals = sorted(sum(r.values()) for r in runs)
    print(
        f"`grizz ask` import path: median {statistics.median(totals) / 1000:.0f} ms "
        f"of imports ({args.runs} runs); self time by top-level package:"
    )
    names = {n for r in runs for n in r}
    median = {n: statistics.median(r.get(n, 0) for r in runs) for n in names}
    for name, us in sorted(median.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {name:28s} {us / 1000:7.1f} ms")
    for module in ("httpx", "openai", "textual.app", "sqlite_utils", "pydantic"):
        try:
            t = wall(args.sdk_python, f"import {module}", args.runs)
        except subprocess.CalledProcessError:
            continue
        print(
            f"  python -c 'import {module}': {t * 1000:6.0f} ms (process wall, median)"
        )
    print(
        f"  python -c 'pass':            "
        f"{wall(args.sdk_python, 'pass', args.runs) * 1000:6.0f} ms"
    )


if __name__ == "__main__":
    main()
