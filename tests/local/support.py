"""Shared by the fixtures that run the real local model (tests/local, tests/tui)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from grizz_core.providers.local import models as local_models


def use_local_model(models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Require the `local` extra (skip without it, fail in CI), point the model
    cache at `models_dir`, and keep replies and the context window short."""
    if not local_models.available():
        message = "the `local` extra is not installed: pip install -e '.[test,local]'"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    monkeypatch.setenv("GRIZZ_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("GRIZZ_MAX_TOKENS", "40")
    monkeypatch.setenv("GRIZZ_LOCAL__N_CTX", "1024")
    return models_dir
