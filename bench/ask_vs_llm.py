"""`grizz ask` vs Simon Willison's `llm`: wall time from start to full reply.

Both run as fresh processes against the same local OpenAI-compatible fake
endpoint (tests/fakes/openai_server.py, in this process), alternating runs so
machine noise hits both alike. `llm` lives in its own venv:

    python3 -m venv bench/.work/llm-venv
    bench/.work/llm-venv/bin/pip install llm==0.36
    python3 -m venv bench/.work/grizz-venv && bench/.work/grizz-venv/bin/pip install .
    .venv/bin/python bench/ask_vs_llm.py --runs 20

Both store the exchange in their SQLite log, as a user's default run would.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.openai_server import FakeOpenAI, Text  # noqa: E402

REPLY = "Hey! I'm doing great, thanks for asking. 🐻 " * 10


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if done.returncode != 0 or REPLY.strip() not in done.stdout.decode():
        raise SystemExit(f"{cmd[0]} failed: {done.stderr.decode()[-500:]}")
    return elapsed


def summary(name: str, times: list[float]) -> str:
    ordered = sorted(times)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    return (
        f"{name:6s} median {statistics.median(times) * 1000:7.1f} ms   "
        f"p90 {p90 * 1000:7.1f} ms   min {ordered[0] * 1000:7.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--llm", default=str(ROOT / "bench/.work/llm-venv/bin/llm"))
    parser.add_argument(
        "--grizz",
        default=str(ROOT / "bench/.work/grizz-venv/bin/grizz"),
        help="a plain `pip install .` of Grizz, as a user has it (no test extras)",
    )
    args = parser.parse_args()

    fake = FakeOpenAI(default=Text(REPLY, chunk=8)).start()
    work = Path(tempfile.mkdtemp(prefix="grizz-bench-"))
    (work / "llm").mkdir()
    (work / "llm" / "extra-openai-models.yaml").write_text(
        f"- model_id: fake\n  model_name: fake-model\n  api_base: {fake.base_url}\n"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GRIZZ_", "LLM_"))}
    base.update(OPENAI_API_KEY="sk-bench", OPENAI_BASE_URL=fake.base_url)
    grizz_env = {
        **base,
        "GRIZZ_HOME": str(work / "grizz"),
        "GRIZZ_MODEL": "fake-model",
        "GRIZZ_NO_KEYRING": "1",
    }
    llm_env = {**base, "LLM_USER_PATH": str(work / "llm")}
    grizz_cmd = [args.grizz, "ask", "how are you?"]
    llm_cmd = [args.llm, "-m", "fake", "how are you?"]

    timed(grizz_cmd, grizz_env), timed(llm_cmd, llm_env)  # warm the page cache
    grizz_times, llm_times = [], []
    for _ in range(args.runs):
        grizz_times.append(timed(grizz_cmd, grizz_env))
        llm_times.append(timed(llm_cmd, llm_env))
    fake.stop()
    print(
        f"{args.runs} alternating runs each, reply {len(REPLY)} chars in 8-char chunks"
    )
    print(summary("grizz", grizz_times))
    print(summary("llm", llm_times))
    ratio = statistics.median(grizz_times) / statistics.median(llm_times)
    print(f"ratio grizz/llm (median): {ratio:.2f}x")


if __name__ == "__main__":
    main()
