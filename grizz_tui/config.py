"""Grizz settings: defaults, the TOML config file, `GRIZZ_*` environment variables.

Precedence, highest first: command-line flag > environment > config file > default.
Each setting has a dotted key (`model`, `tui.theme`) used by `grizz config get|set`
and in the file (`[tui]` table, `theme = ...`). Its environment variable is
`GRIZZ_` + the key upper-cased with `.` → `__` (`GRIZZ_TUI__THEME`); a few keys
also honour the variables other OpenAI tools use (`OPENAI_BASE_URL`).

This is plain `tomllib` + dataclasses rather than pydantic-settings: the latter
costs ~0.35 s of import time on the `grizz ask` path (measured, see
docs/benchmarks.md) for validation we do in 60 lines here.

Must not import: textual, httpx, rich, the store or the core.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from grizz_tui import paths
from grizz_tui.errors import ConfigError

Source = Literal["default", "file", "env", "flag"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"


@dataclass(frozen=True)
class KeySpec:
    """One setting: its dotted key, type, default and documentation."""

    key: str
    type: type
    default: Any
    doc: str
    env: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()

    @property
    def attr(self) -> str:
        return self.key.replace(".", "_")

    @property
    def env_names(self) -> tuple[str, ...]:
        return ("GRIZZ_" + self.key.upper().replace(".", "__"), *self.env)


TUI_KEYS: tuple[tuple[str, str, str], ...] = (
    # (binding id in the app, default keys, what it does); `tui.keys.<id>`
    ("cancel", "escape", "stop Grizz's reply (the partial text is kept)."),
    ("regenerate", "ctrl+r", "answer your last message again."),
    ("edit_last", "ctrl+l", "edit your last message and resend it."),
    ("days", "ctrl+g", "open the day navigator."),
    ("search", "ctrl+f", "search all days and memory."),
    ("memory", "ctrl+n", "open the memory screen."),
    ("attach", "ctrl+o", "attach an image to your next message."),
    ("help", "f1", "show all key bindings."),
    ("settings", "ctrl+s", "provider setup."),
    ("undo_memory", "f8", "undo what Grizz just remembered or forgot."),
    ("copy", "c", "copy the focused message."),
    ("copy_code", "k", "copy the next code block of the focused message."),
    ("delete", "d", "delete the focused message."),
    ("edit", "e", "edit the focused message (your last one)."),
)

SPECS: tuple[KeySpec, ...] = (
    KeySpec(
        "provider",
        str,
        "openai",
        "Who answers: 'openai' (any OpenAI-compatible endpoint) or 'local'.",
        choices=("openai", "local"),
    ),
    KeySpec(
        "base_url",
        str,
        DEFAULT_BASE_URL,
        "Base URL of the OpenAI-compatible API (Ollama: http://localhost:11434/v1).",
        env=("OPENAI_BASE_URL",),
    ),
    KeySpec("model", str, "gpt-4o-mini", "Model name sent to the provider."),
    KeySpec(
        "api_key_name",
        str,
        "openai",
        "Name of the stored key to use (see `grizz key set NAME`).",
    ),
    KeySpec(
        "timezone",
        str,
        "",
        "IANA time zone that decides what 'today' is; empty = this machine's.",
    ),
    KeySpec(
        "context_tokens",
        int,
        6000,
        "Token budget for the context sent with each message.",
    ),
    KeySpec("max_tokens", int, 0, "Longest reply in tokens; 0 = provider default."),
    KeySpec("temperature", float, -1.0, "Sampling temperature; negative = default."),
    KeySpec("timeout", float, 60.0, "Seconds to wait for the provider to respond."),
    KeySpec("max_retries", int, 3, "Retries on rate limits (429) and 5xx errors."),
    KeySpec(
        "retry_delay",
        float,
        0.5,
        "First retry delay in seconds; doubles each retry (Retry-After wins).",
    ),
    KeySpec(
        "tools",
        bool,
        True,
        "Let Grizz call its memory tools (turn off for models without tools).",
    ),
    KeySpec(
        "max_input_bytes",
        int,
        1_000_000,
        "Largest prompt `grizz ask` accepts (arguments plus stdin).",
    ),
    KeySpec(
        "local.model",
        str,
        "auto",
        "Local model: 'auto', a name from `grizz local info`, or a .gguf path.",
    ),
    KeySpec(
        "local.n_ctx",
        int,
        2048,
        "Context window of the local model in tokens (bounds its memory).",
    ),
    KeySpec("local.threads", int, 0, "CPU threads for the local model; 0 = all cores."),
    KeySpec(
        "local.fallback",
        bool,
        True,
        "No key and no provider set: answer with the local model, if installed.",
    ),
    KeySpec("tui.theme", str, "textual-dark", "Textual theme of the app."),
    KeySpec(
        "tui.newline_key",
        str,
        "ctrl+j",
        "Key that inserts a newline in the composer (Enter sends).",
    ),
    *(
        KeySpec(f"tui.keys.{name}", str, keys, f"App key(s), comma-separated: {doc}")
        for name, keys, doc in TUI_KEYS
    ),
    KeySpec("server.url", str, "", "Sync server WebSocket URL; empty = direct mode."),
)
SPEC_BY_KEY: dict[str, KeySpec] = {spec.key: spec for spec in SPECS}


@dataclass(frozen=True)
class Settings:
    """Effective settings. Attribute names are keys with `.` → `_`."""

    provider: str = "openai"
    base_url: str = DEFAULT_BASE_URL
    model: str = "gpt-4o-mini"
    api_key_name: str = "openai"
    timezone: str = ""
    context_tokens: int = 6000
    max_tokens: int = 0
    temperature: float = -1.0
    timeout: float = 60.0
    max_retries: int = 3
    retry_delay: float = 0.5
    tools: bool = True
    max_input_bytes: int = 1_000_000
    local_model: str = "auto"
    local_n_ctx: int = 2048
    local_threads: int = 0
    local_fallback: bool = True
    tui_theme: str = "textual-dark"
    tui_newline_key: str = "ctrl+j"
    tui_keys_cancel: str = "escape"
    tui_keys_regenerate: str = "ctrl+r"
    tui_keys_edit_last: str = "ctrl+l"
    tui_keys_days: str = "ctrl+g"
    tui_keys_search: str = "ctrl+f"
    tui_keys_memory: str = "ctrl+n"
    tui_keys_attach: str = "ctrl+o"
    tui_keys_help: str = "f1"
    tui_keys_settings: str = "ctrl+s"
    tui_keys_undo_memory: str = "f8"
    tui_keys_copy: str = "c"
    tui_keys_copy_code: str = "k"
    tui_keys_delete: str = "d"
    tui_keys_edit: str = "e"
    server_url: str = ""
    sources: Mapping[str, Source] = field(default_factory=dict, compare=False)
    """Where each key's value came from."""
    warnings: tuple[str, ...] = field(default=(), compare=False)
    """Problems that did not stop loading (unknown keys in the file)."""

    def get(self, key: str) -> Any:
        return getattr(self, spec_for(key).attr)


def spec_for(key: str) -> KeySpec:
    try:
        return SPEC_BY_KEY[key]
    except KeyError:
        known = ", ".join(SPEC_BY_KEY)
        raise ConfigError(
            f"Unknown setting '{key}'. Known settings: {known}."
        ) from None


def coerce(spec: KeySpec, value: Any, where: str) -> Any:
    """Convert `value` (from TOML or a string) to the spec's type or raise."""
    try:
        if spec.type is bool:
            value = _to_bool(value)
        elif spec.type is int:
            if isinstance(value, bool | float):
                raise ValueError
            value = int(value)
        elif spec.type is float:
            if isinstance(value, bool):
                raise ValueError
            value = float(value)
        elif not isinstance(value, str):
            raise ValueError
    except (TypeError, ValueError):
        kind = spec.type.__name__
        raise ConfigError(
            f"Setting '{spec.key}' from {where} must be {_article(kind)} {kind}, "
            f"got {value!r}."
        ) from None
    if spec.choices and value not in spec.choices:
        raise ConfigError(
            f"Setting '{spec.key}' from {where} must be one of "
            f"{', '.join(spec.choices)}; got {value!r}."
        )
    return value


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ValueError(value)


def read_config_file(path: Path | None = None) -> dict[str, Any]:
    """The config file as a nested dict ({} when it does not exist)."""
    path = path or paths.config_file()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(
            f"Could not read config file {path}: {exc.strerror}."
        ) from None
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"Config file {path} is not valid TOML ({exc}); fix it or run "
            "`grizz config path` to find and remove it."
        ) from None


def flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'tui': {'theme': 'x'}} → {'tui.theme': 'x'}."""
    flat: dict[str, Any] = {}
    for name, value in table.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict):
            flat.update(flatten(value, key + "."))
        else:
            flat[key] = value
    return flat


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    path: Path | None = None,
) -> Settings:
    """Resolve every setting: flag `overrides` > env > file > default.

    Raises:
        ConfigError: the file is not valid TOML or a value has the wrong type.
    """
    env = os.environ if env is None else env
    path = path or paths.config_file()
    file_values = flatten(read_config_file(path))
    warnings = [
        f"Ignoring unknown setting '{key}' in {path}."
        for key in file_values
        if key not in SPEC_BY_KEY
    ]
    values: dict[str, Any] = {}
    sources: dict[str, Source] = {}
    for spec in SPECS:
        value: Any = spec.default
        source: Source = "default"
        if spec.key in file_values:
            value = coerce(spec, file_values[spec.key], f"{path}")
            source = "file"
        for name in reversed(spec.env_names):  # first name has priority
            if env.get(name):
                value, source = coerce(spec, env[name], f"${name}"), "env"
        if overrides and overrides.get(spec.key) is not None:
            value, source = (
                coerce(spec, overrides[spec.key], "the command line"),
                "flag",
            )
        values[spec.attr] = value
        sources[spec.key] = source
    return Settings(**values, sources=sources, warnings=tuple(warnings))


def set_value(key: str, raw: str, path: Path | None = None) -> Any:
    """Validate `raw` for `key` and write it to the config file; return it."""
    spec = spec_for(key)
    value = coerce(spec, raw, "the command line")
    _update_file(path, lambda table: _nested_set(table, key.split("."), value))
    return value


def unset_value(key: str, path: Path | None = None) -> None:
    """Remove `key` from the config file (it falls back to env or default)."""
    spec_for(key)
    _update_file(path, lambda table: _nested_pop(table, key.split(".")))


def _update_file(path: Path | None, change: Any) -> None:
    import tomli_w

    path = path or paths.config_file()
    table = read_config_file(path)
    change(table)
    paths.ensure_private_dir(path.parent)
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(tomli_w.dumps(table), encoding="utf-8")
    tmp.replace(path)


def _nested_set(table: dict[str, Any], parts: list[str], value: Any) -> None:
    for part in parts[:-1]:
        table = table.setdefault(part, {})
    table[parts[-1]] = value


def _nested_pop(table: dict[str, Any], parts: list[str]) -> None:
    for part in parts[:-1]:
        table = table.get(part, {})
    table.pop(parts[-1], None)


def describe(settings: Settings) -> list[tuple[str, Any, Source]]:
    """(key, value, source) for every setting, for `grizz config get`."""
    return [
        (
            spec.key,
            getattr(settings, spec.attr),
            settings.sources.get(spec.key, "default"),
        )
        for spec in SPECS
    ]


def replace(settings: Settings, **changes: Any) -> Settings:
    """A copy of `settings` with some attributes changed (tests, the app)."""
    return dataclasses.replace(settings, **changes)
