"""In-process llama.cpp vs a managed `llama_cpp.server` subprocess: first token.

The decision behind grizz_core/providers/local/provider.py. Same model (the default
Qwen2.5-Coder-0.5B file), same messages (Grizz's compact persona + "hi"), same
threads, alternating runs:

- in-process, cold: a fresh `python` that imports llama_cpp, loads the model
  and streams (what `grizz ask --provider local` does, minus Grizz itself);
- server, cold: spawn `python -m llama_cpp.server`, poll until it answers,
  then stream over HTTP (what `grizz ask` would do if it managed a server);
- warm (the app, model already resident): a second turn ("how are you?",
  same persona) to the same server vs in the same process.

The server path is timed from this process, without Grizz's own start-up, so
it is favoured; it still loses the cold case. Needs the server extra in its
own venv (fastapi, uvicorn, …, which Grizz does not depend on):

    python3 -m venv bench/.work/llama-server-venv
    bench/.work/llama-server-venv/bin/pip install 'llama-cpp-python[server]==0.3.36'
    .venv/bin/python bench/local_mode.py --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVER_PY = ROOT / "bench/.work/llama-server-venv/bin/python"


def messages() -> list[dict[str, str]]:
    from grizz_core.providers.local.provider import COMPACT_PERSONA

    return [
        {"role": "system", "content": COMPACT_PERSONA},
        {"role": "user", "content": "hi"},
    ]


INPROC = """
import json, sys, time
from llama_cpp import Llama
llm = Llama(model_path=sys.argv[1], n_ctx=2048, n_threads=2, verbose=False)
msgs = json.loads(sys.argv[3])
def first(msgs=msgs):
    t = time.perf_counter()
    for chunk in llm.create_chat_completion(messages=msgs, stream=True, max_tokens=8):
        if chunk["choices"][0]["delta"].get("content"):
            return time.perf_counter() - t
first()
end = time.perf_counter()
msgs[-1]["content"] = "how are you?"
print(json.dumps({"cold_end": end, "warm": first(msgs)}))
"""


def in_process(model: Path, msgs: list[dict[str, str]]) -> tuple[float, float]:
    start = time.perf_counter()
    done = subprocess.run(
        [SERVER_PY, "-c", INPROC, str(model), str(start), json.dumps(msgs)],
        capture_output=True,
        check=True,
        env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"},
    )
    data = json.loads(done.stdout)
    return data["cold_end"] - start, data["warm"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stream_first(port: int, msgs: list[dict[str, str]]) -> float:
    body = json.dumps({"messages": msgs, "stream": True, "max_tokens": 8}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:
        for line in response:
            if (
                b'"content":"' in line.replace(b" ", b"")
                and b'"content":""' not in line
            ):
                return time.perf_counter() - start
    raise SystemExit("the server streamed no text")


def server(model: Path, msgs: list[dict[str, str]]) -> tuple[float, float, float]:
    port = free_port()
    start = time.perf_counter()
    proc = subprocess.Popen(
        [
            SERVER_PY,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--port",
            str(port),
            "--n_ctx",
            "2048",
            "--n_threads",
            "2",
            "--verbose",
            "false",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"},
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("llama_cpp.server did not start") from None
                time.sleep(0.05)
        ready = time.perf_counter() - start
        stream_first(port, msgs)
        cold = time.perf_counter() - start
        again = [*msgs[:-1], {"role": "user", "content": "how are you?"}]
        return ready, cold, stream_first(port, again)
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ["GRIZZ_MODELS_DIR"] = os.environ.get(
        "GRIZZ_MODELS_DIR", tempfile.mkdtemp(prefix="grizz-models-")
    )
    from grizz_core.providers.local import models as local_models

    model = local_models.resolve("auto").path
    msgs = messages()
    print(f"load average before: {os.getloadavg()}")
    inproc_cold, inproc_warm, ready, cold, warm = [], [], [], [], []
    for _ in range(args.runs):
        c, w = in_process(model, msgs)
        inproc_cold.append(c)
        inproc_warm.append(w)
        r, c, w = server(model, msgs)
        ready.append(r)
        cold.append(c)
        warm.append(w)
    print(f"load average after: {os.getloadavg()}")
    med = statistics.median
    print(
        f"in-process  cold first token (spawn → text)  median {med(inproc_cold):5.2f} s"
    )
    print(
        f"server      cold first token (spawn → text)  median {med(cold):5.2f} s "
        f"(ready after {med(ready):4.2f} s)"
    )
    print(
        f"in-process  warm first token                 median {med(inproc_warm):5.2f} s"
    )
    print(f"server      warm first token                 median {med(warm):5.2f} s")


if __name__ == "__main__":
    main()
