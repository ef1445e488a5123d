"""A disk cache of the model's state after the persona, shared by processes.

On 2 cores, evaluating the prompt (not generating) dominates a local reply's
first token, and every `grizz ask` is a fresh process. The chat template plus
the persona is the same for every request, so the KV state after it is saved
once (llama.cpp's own state file, ~1.5 MB for the default model) and loaded
by later processes, which then evaluate only the rest of the prompt. Files are
keyed by the model file and the exact prefix tokens, written atomically, and
a file that fails to load is deleted and rebuilt.

Runs in the generation thread. Must not import at module level: llama_cpp.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grizz_core import paths

MIN_PREFIX = 32
"""Shorter prefixes are not worth a file."""


@dataclass
class PrefixCache:
    """Where one request's prefix state lives, and what became of it."""

    path: Path
    length: int
    outcome: str = "unused"
    """"restored", "saved" or "unused" (model already warm, or no persona)."""


def stable_prefix(llm: Any, tokens: list[int], prompt: str, persona: str) -> int:
    """How many leading `tokens` cover the chat template up to the end of
    `persona` (0 when the prompt does not contain it)."""
    persona = persona.rstrip()
    at = prompt.find(persona) if persona else -1
    if at < 0:
        return 0
    head = llm.tokenize(
        prompt[: at + len(persona)].encode("utf-8"), add_bos=False, special=True
    )
    count = 0
    for mine, theirs in zip(head, tokens, strict=False):
        if mine != theirs:
            break
        count += 1
    # The last token of a cut-off text may merge differently; leave it out.
    return max(0, count - 1)


def state_path(model_path: Path, prefix: list[int]) -> Path:
    key = hashlib.sha256()
    key.update(f"{model_path.name}:{model_path.stat().st_size}:".encode())
    key.update(",".join(map(str, prefix)).encode())
    return paths.models_dir() / f"{_stem(model_path)}{key.hexdigest()[:20]}.state"


def _stem(model_path: Path) -> str:
    """Prefix states of one model share this name start (for pruning)."""
    model = hashlib.sha256(model_path.name.encode()).hexdigest()[:8]
    return f"prefix-{model}-"


def restore(llm: Any, path: Path, prefix: list[int]) -> bool:
    """Load a saved prefix state into a fresh `llm`; True on success."""
    import llama_cpp

    if not path.is_file():
        return False
    capacity = llm.n_ctx()
    tokens = (llama_cpp.llama_token * capacity)()
    count = ctypes.c_size_t(0)
    ok = llama_cpp.llama_state_load_file(
        llm.ctx, str(path).encode(), tokens, capacity, ctypes.byref(count)
    )
    if not ok or list(tokens[: count.value]) != prefix:
        path.unlink(missing_ok=True)
        llm.n_tokens = 0
        return False
    llm.input_ids[: count.value] = prefix
    llm.n_tokens = count.value
    return True


def save(llm: Any, path: Path, prefix: list[int]) -> None:
    """Save the state of `llm`, which holds exactly `prefix`; best effort."""
    import llama_cpp

    try:
        paths.ensure_private_dir(path.parent)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        array = (llama_cpp.llama_token * len(prefix))(*prefix)
        if llama_cpp.llama_state_save_file(
            llm.ctx, str(tmp).encode(), array, len(prefix)
        ):
            tmp.replace(path)
            _prune(path)
        tmp.unlink(missing_ok=True)
    except OSError:
        pass  # a cache: a read-only or full disk only costs speed


def _prune(keep: Path) -> None:
    """Drop this model's older prefix states (an older persona's, say)."""
    stem = keep.name[: keep.name.rindex("-") + 1]
    for old in keep.parent.glob(f"{stem}*.state"):
        if old != keep:
            old.unlink(missing_ok=True)
