"""Fixtures for the tests that run the real local model (the `local` extra).

The model is assembled once per test process into a session directory
(`GRIZZ_MODELS_DIR`), replies are capped at a few dozen tokens, and the
context window is small, so the whole directory runs in well under a minute.
Without the extra these tests are skipped on a developer's machine, but in CI
(`CI` set) a missing extra is a failure: CI must install `.[test,local]`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.local.support import use_local_model


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture
def local_env(models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The local extra is installed; short replies; a shared models cache."""
    return use_local_model(models_dir, monkeypatch)
