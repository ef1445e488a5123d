"""Shared fixtures: an isolated GRIZZ_HOME per test, a fresh database, and the
OpenAI-compatible fake provider on a real socket (tests/fakes/openai_server.py).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from grizz_tui.store.db import Database
from tests.fakes.openai_server import FakeOpenAI

# A command started with `&` from a non-interactive shell (`cmd &` in a script,
# some CI runners) inherits SIGINT *ignored*, and an ignored signal stays
# ignored across exec: the `grizz ask` processes the Ctrl-C tests start would
# never see the interrupt and exit 0. Handling SIGINT here makes it default again
# in every child process.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

ISOLATED_ENV = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "GRIZZ_API_KEY",
    "GRIZZ_MODEL",
    "GRIZZ_BASE_URL",
    "GRIZZ_PROVIDER",
    "GRIZZ_CONFIG_FILE",
    "GRIZZ_DB",
    "GRIZZ_TIMEZONE",
    "NO_COLOR",
    "GRIZZ_SERVER__URL",
    "GRIZZ_SERVER_CONFIG",
    "GRIZZ_SERVER_API_KEY",
    "GRIZZ_SERVER_BASE_URL",
    "GRIZZ_SERVER_MODEL",
    "GRIZZ_SERVER_PROVIDER",
    "INVOCATION_ID",
    "JOURNAL_STREAM",
    "REDIS_URL",
)


@pytest.fixture(autouse=True)
def grizz_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own GRIZZ_HOME and no inherited Grizz/OpenAI settings."""
    home = tmp_path / "grizz-home"
    home.mkdir()
    for name in ISOLATED_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GRIZZ_HOME", str(home))
    monkeypatch.setenv("GRIZZ_NO_KEYRING", "1")
    monkeypatch.setenv("GRIZZ_RETRY_DELAY", "0.01")
    # No silent fallback to the local model when a test sets no provider
    # (tests/local/ turns it back on where that is the point).
    monkeypatch.setenv("GRIZZ_LOCAL__FALLBACK", "0")
    return home


@pytest.fixture
def db(grizz_home: Path) -> Iterator[Database]:
    """A freshly migrated database in the test's GRIZZ_HOME."""
    from grizz_tui.store.db import open_database

    database = open_database(grizz_home / "grizz.db")
    yield database
    database.close()


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """The OpenAI-compatible fake provider; `fake_openai.base_url` ends in /v1."""
    fake = FakeOpenAI().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def provider_env(
    fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> FakeOpenAI:
    """Point Grizz (in-process and subprocesses) at the fake provider."""
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
    monkeypatch.setenv("GRIZZ_MODEL", "fake-model")
    monkeypatch.setenv("GRIZZ_SERVER_MODEL", "fake-model")
    return fake_openai
