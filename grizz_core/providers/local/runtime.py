"""Loading a GGUF model with llama.cpp quietly, within a memory bound.

Called from a worker thread (never on an event loop). Three promises:

- llama.cpp never writes to the terminal: its C log callback is replaced by
  one that keeps the last lines in memory (they end up in error messages), and
  the Python-level chatter of `Llama(verbose=True)` during construction goes to
  a buffer. We do NOT use `verbose=False`, because llama-cpp-python then
  `dup2`s the process's fd 1 and 2 to /dev/null while loading, which would
  swallow a running TUI's output (Textual writes to those fds).
- Memory is checked before loading (model file + KV cache + compute buffers
  against what the OS, the cgroup and RLIMIT_AS allow) and reported after.
- Every failure is a `GrizzError` with one sentence.

Must not import at module level: llama_cpp (imported only by `load`), textual.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import io
import os
import resource
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grizz_core.errors import ConfigError, ProviderError
from grizz_core.providers.base import Progress
from grizz_core.providers.local import models as local_models
from grizz_core.providers.local.models import INSTALL_HINT, ModelFile

MiB = 1 << 20
COMPUTE_OVERHEAD = 160 * MiB
"""Compute buffers, tokenizer tables and runtime slack measured on top of the
file and KV cache (docs/benchmarks.md has the measured RSS)."""


class CorruptModelError(ProviderError):
    """The GGUF file could not be read as a model."""


_LOG_TAIL: collections.deque[str] = collections.deque(maxlen=40)
_log_callback: Any = None
_load_lock = threading.Lock()


@dataclass(frozen=True)
class LoadInfo:
    """What was loaded and what it costs; shown by `grizz local info`."""

    model: ModelFile
    n_ctx: int
    threads: int
    load_seconds: float
    estimate_bytes: int
    rss_bytes: int

    def describe(self) -> list[tuple[str, str]]:
        return [
            ("model", f"{self.model.title} [{self.model.name}]"),
            ("licence", self.model.licence),
            ("file", f"{self.model.path} ({self.model.size / MiB:.0f} MiB)"),
            ("context", f"{self.n_ctx} tokens"),
            ("threads", str(self.threads)),
            ("memory estimate", f"{self.estimate_bytes / MiB:.0f} MiB"),
            ("process RSS after load", f"{self.rss_bytes / MiB:.0f} MiB"),
            ("load time", f"{self.load_seconds:.2f} s"),
        ]


def import_runtime() -> Any:
    """`llama_cpp`, with its logging captured; ConfigError if not installed."""
    # llama.cpp's OpenMP threads spin while waiting by default; on a busy
    # 2-core machine that made generation 3-5x slower (docs/benchmarks.md).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import llama_cpp
        import llama_cpp.llama  # installs llama-cpp-python's printing callback
    except ImportError:
        raise ConfigError(
            f"The local model needs llama-cpp-python, which is not installed; "
            f"{INSTALL_HINT}."
        ) from None
    except OSError as exc:
        raise ProviderError(
            f"llama.cpp's library could not be loaded ({exc}); reinstall "
            "llama-cpp-python."
        ) from None
    _capture_logs(llama_cpp)
    return llama_cpp


def _capture_logs(llama_cpp: Any) -> None:
    global _log_callback
    if _log_callback is not None:
        return

    def keep(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        _LOG_TAIL.append(text.decode("utf-8", "replace"))

    keep = llama_cpp.llama_log_callback(keep)

    llama_cpp.llama_log_set(keep, ctypes.c_void_p(0))
    _log_callback = keep  # a ctypes callback must outlive its registration


def last_log_line(hint: str = "") -> str:
    """The most relevant recent llama.cpp log line (errors first)."""
    lines = [" ".join(line.split()) for line in _LOG_TAIL if line.strip()]
    for line in reversed(lines):
        if "error" in line.lower() or (hint and hint in line.lower()):
            return line[:160]
    return lines[-1][:160] if lines else ""


def threads(setting: int) -> int:
    return setting if setting > 0 else max(1, os.cpu_count() or 1)


def estimate_bytes(model: ModelFile, n_ctx: int) -> int:
    kv = model.kv_bytes_per_token or 24 * 1024  # unknown model: a generous guess
    return model.size + n_ctx * kv + COMPUTE_OVERHEAD


def available_bytes() -> int | None:
    """Memory this process may still use: the least of MemAvailable, the
    cgroup's limit and RLIMIT_AS headroom; None when nothing is known."""
    limits: list[int] = []
    meminfo = _read("/proc/meminfo")
    for line in meminfo.splitlines():
        if line.startswith("MemAvailable:"):
            limits.append(int(line.split()[1]) * 1024)
    cg_max, cg_cur = (
        _read("/sys/fs/cgroup/memory.max"),
        _read("/sys/fs/cgroup/memory.current"),
    )
    if cg_max.strip().isdigit() and cg_cur.strip().isdigit():
        limits.append(max(0, int(cg_max) - int(cg_cur)))
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        limits.append(max(0, soft - _status_bytes("VmSize")))
    return min(limits) if limits else None


def rss_bytes() -> int:
    return _status_bytes("VmRSS")


def _status_bytes(field: str) -> int:
    for line in _read("/proc/self/status").splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def check_memory(model: ModelFile, n_ctx: int) -> int:
    """The estimate; ProviderError when it does not fit in what is available."""
    need = estimate_bytes(model, n_ctx)
    free = available_bytes()
    if free is not None and need > free:
        raise ProviderError(
            f"Not enough memory for the local model {model.name}: it needs about "
            f"{need / MiB:.0f} MiB and only {free / MiB:.0f} MiB is available; close "
            "other programs or lower local.n_ctx."
        )
    return need


def load(
    choice: str, n_ctx: int, n_threads: int, progress: Progress | None = None
) -> tuple[Any, LoadInfo]:
    """Resolve, check and load the model; returns (Llama, LoadInfo).

    A corrupt assembled cache file is removed and rebuilt once. `progress`
    hears about the (first-time) assembly and the load, from this thread.

    Raises:
        ConfigError: llama-cpp-python or the model is not installed.
        ProviderError: corrupt model file, not enough memory, llama.cpp failure.
    """
    llama_cpp = import_runtime()
    started = time.monotonic()
    model = local_models.resolve(choice, progress)
    estimate = check_memory(model, n_ctx)
    count = threads(n_threads)
    if progress is not None:
        progress("Loading the local model", None)
    try:
        llm = _construct(llama_cpp, model, n_ctx, count)
    except CorruptModelError:
        if not local_models.forget_cached(model):
            raise
        model = local_models.resolve(choice, progress)
        if progress is not None:
            progress("Loading the local model", None)
        llm = _construct(llama_cpp, model, n_ctx, count)
    info = LoadInfo(
        model, n_ctx, count, time.monotonic() - started, estimate, rss_bytes()
    )
    return llm, info


@contextlib.contextmanager
def _without_amx_repacking(llama_cpp: Any) -> Iterator[None]:
    """On a CPU with AMX, load without llama.cpp's AMX weight repacking.

    llama.cpp's AMX kernels crash with a SIGSEGV in the first decode of Q4_K
    models on Sapphire-Rapids-class CPUs (ggml-org/llama.cpp#20824, closed
    unfixed; other projects' CI hit it too). Seen here: llama-cpp-python
    0.3.36 built natively on such a machine segfaulted in every local test.
    Keeping the weights out of the extra (AMX) buffers avoids it, with
    `use_extra_bufts = False` in the model parameters. `Llama()` has no
    argument for that and takes its parameters from
    `llama_model_default_params()` while it loads, so that one function is
    wrapped for the load (under `_load_lock`). Other CPUs keep the repacked
    kernels, which are faster.
    """
    low = llama_cpp.llama_cpp
    if b"AMX_INT8 = 1" not in low.llama_print_system_info():
        yield
        return
    original = low.llama_model_default_params

    def params() -> Any:
        chosen = original()
        chosen.use_extra_bufts = False
        return chosen

    low.llama_model_default_params = params
    try:
        yield
    finally:
        low.llama_model_default_params = original


def _construct(llama_cpp: Any, model: ModelFile, n_ctx: int, count: int) -> Any:
    if not local_models.looks_like_gguf(model.path):
        raise _corrupt(model, "not a GGUF file")
    chatter = io.StringIO()
    try:
        with (
            _load_lock,
            contextlib.redirect_stdout(chatter),
            contextlib.redirect_stderr(chatter),
            _without_amx_repacking(llama_cpp),
        ):
            llm = llama_cpp.Llama(
                model_path=str(model.path),
                n_ctx=n_ctx,
                n_batch=512,
                n_threads=count,
                n_threads_batch=count,
                use_mmap=True,
                no_perf=True,
                verbose=True,  # see the module docstring: False would dup2 fd 1/2
            )
    except MemoryError:
        raise ProviderError(
            f"Not enough memory to load the local model {model.name}; close other "
            "programs or lower local.n_ctx."
        ) from None
    except (ValueError, RuntimeError) as exc:
        detail = last_log_line() or str(exc)
        if "context" in str(exc).lower() or "alloc" in detail.lower():
            raise ProviderError(
                f"llama.cpp could not allocate the local model's context "
                f"({n_ctx} tokens): {detail}; lower local.n_ctx or free memory."
            ) from None
        raise _corrupt(model, detail) from None
    llm.verbose = False
    return llm


def _corrupt(model: ModelFile, detail: str) -> CorruptModelError:
    fix = "replace it" if model.spec is None else f"reinstall ({INSTALL_HINT})"
    return CorruptModelError(
        f"The local model file {model.path} is corrupt or unreadable ({detail}); {fix}."
    )
