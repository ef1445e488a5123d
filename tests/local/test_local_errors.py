"""Choosing the local provider, and its failures: one clear sentence each."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from grizz_core.errors import ConfigError, ProviderError
from grizz_core.providers.local import models as local_models
from grizz_core.providers.local import runtime as local_runtime
from grizz_core.providers.local.provider import LocalProvider
from grizz_core.providers.openai_compat import OpenAICompatProvider
from grizz_tui import secrets
from grizz_tui.cli import app
from grizz_tui.config import load_settings
from grizz_tui.factory import make_provider

pytestmark = pytest.mark.local

GRIZZ = str(Path(sys.executable).parent / "grizz")


def ask(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["ask", *args])
    return result.exit_code, result.stderr


def one_line(stderr: str) -> bool:
    return "\n" not in stderr.strip() and "Traceback" not in stderr


def test_importing_the_provider_does_not_load_llama_cpp() -> None:
    probe = (
        "import sys\n"
        "import grizz_core.providers.local.provider, grizz_tui.factory, grizz_tui.cli\n"
        "print('llama_cpp' in sys.modules, 'numpy' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["False", "False"]


class TestChoosingTheProvider:
    def test_fresh_install_falls_back_to_local(
        self, local_env: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("GRIZZ_LOCAL__FALLBACK")
        assert isinstance(make_provider(load_settings()), LocalProvider)

    def test_a_stored_key_wins(
        self, local_env: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("GRIZZ_LOCAL__FALLBACK")
        secrets.set_key("openai", "sk-test")
        assert isinstance(make_provider(load_settings()), OpenAICompatProvider)

    def test_a_local_server_url_wins(
        self, local_env: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("GRIZZ_LOCAL__FALLBACK")
        monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")
        assert isinstance(make_provider(load_settings()), OpenAICompatProvider)

    def test_explicit_openai_without_key_is_an_error(
        self, local_env: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("GRIZZ_LOCAL__FALLBACK")
        with pytest.raises(ConfigError, match="No API key"):
            make_provider(load_settings({"provider": "openai"}))

    def test_fallback_off_names_the_local_extra(self, local_env: Path) -> None:
        with pytest.raises(ConfigError, match=r"install grizz\[local\]"):
            make_provider(load_settings())

    def test_explicit_local_and_its_settings(self, local_env: Path) -> None:
        settings = load_settings(
            {"provider": "local", "local.n_ctx": 512, "max_tokens": 64}
        )
        local = make_provider(settings)
        assert isinstance(local, LocalProvider)
        assert (local.context_window, local.prompt_budget) == (512, 448)
        assert local.model == "qwen2.5-coder-0.5b" and not local.supports_tools


class TestFailures:
    def test_extra_not_installed(
        self, local_env: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setitem(sys.modules, "llama_cpp", None)
        code, stderr = ask("--provider", "local", "hi")
        assert code == 3 and one_line(stderr)
        assert "install grizz[local]" in stderr

    def test_no_model_installed(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(local_models, "installed", lambda: [])
        with pytest.raises(ConfigError, match=r"No local model is installed; install"):
            local_models.resolve("auto")

    def test_unknown_model_name(self) -> None:
        with pytest.raises(ConfigError, match="Unknown local model 'llama-70b'"):
            local_models.resolve("llama-70b")

    @pytest.mark.parametrize(
        "content", [b"not a model at all", b"GGUF" + b"\x03" * 400]
    )
    def test_corrupt_model_file(
        self, local_env: Path, tmp_path: Path, content: bytes
    ) -> None:
        broken = tmp_path / "broken.gguf"
        broken.write_bytes(content)
        result = CliRunner().invoke(
            app,
            ["ask", "--provider", "local", "hi"],
            env={"GRIZZ_LOCAL__MODEL": str(broken)},
        )
        assert result.exit_code == 1 and one_line(result.stderr)
        assert f"{broken} is corrupt or unreadable" in result.stderr

    def test_corrupt_assembled_model_is_rebuilt(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local_env: Path
    ) -> None:
        monkeypatch.setenv("GRIZZ_MODELS_DIR", str(tmp_path / "models"))
        spec = local_models.QWEN_CODER_05B
        target = local_models.cached_path(spec)
        target.parent.mkdir(parents=True)
        with target.open("wb") as handle:  # right size, wrong bytes
            handle.truncate(spec.size)
        heard: list[tuple[str, float | None]] = []
        llm, info = local_runtime.load("auto", 256, 1, lambda *p: heard.append(p))
        llm.close()
        assert info.model.path == target and local_models.looks_like_gguf(target)
        preparing = [f for text, f in heard if text == "Preparing the local model"]
        assert preparing and preparing[-1] == 1.0 and preparing == sorted(preparing)
        assert heard[-1] == ("Loading the local model", None)

    def test_not_enough_memory_is_checked_before_loading(
        self, local_env: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(local_runtime, "available_bytes", lambda: 100 << 20)
        with pytest.raises(ProviderError, match=r"Not enough memory .* only 100 MiB"):
            local_runtime.load("auto", 1024, 1)

    def test_not_enough_memory_in_a_limited_process(self, local_env: Path) -> None:
        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_AS, (600 << 20, 600 << 20))

        done = subprocess.run(
            [GRIZZ, "ask", "--provider", "local", "hi"],
            capture_output=True,
            env=dict(os.environ),
            timeout=60,
            stdin=subprocess.DEVNULL,
            preexec_fn=limit,
        )
        stderr = done.stderr.decode()
        assert done.returncode == 1 and one_line(stderr), stderr
        assert "memory" in stderr
