"""Settings declared once: the `Spec` machinery both apps use, and
`ProviderSettings` (who answers, and how), which both apps' settings extend.

A setting is a dataclass field made with `setting(default, doc, …)`; its
`Spec` (dotted key, type, environment names, choices) is derived from the
field, so the name, default and documentation are written in one place. The
device (`grizz_tui.config.Settings`) reads them from `GRIZZ_*` variables and
its config file; the server (`grizz_server.settings.ServerSettings`) from
`GRIZZ_SERVER_*` variables and its own TOML file.

Must not import: anything outside the standard library and `grizz_core`.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from grizz_core.errors import ConfigError

Source = Literal["default", "file", "env", "flag"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_META = "grizz.setting"


@dataclass(frozen=True)
class Spec:
    """One setting: its dotted key, type, default and documentation."""

    key: str
    """Dotted name in `config get|set` and the TOML file (`local.model`)."""
    attr: str
    """The settings attribute holding it (`local_model`)."""
    type: type
    default: Any
    doc: str
    env: tuple[str, ...] = ()
    """Other environment variables honoured after the app's own name."""
    choices: tuple[str, ...] = ()
    secret: bool = False
    """Never shown or logged (`config get` prints `***`)."""

    def env_names(self, prefix: str) -> tuple[str, ...]:
        """`prefix` + the key upper-cased with `.` → `__`, then `env`."""
        return (prefix + self.key.upper().replace(".", "__"), *self.env)


def setting(
    default: Any,
    doc: str,
    *,
    key: str = "",
    env: tuple[str, ...] = (),
    choices: tuple[str, ...] = (),
    secret: bool = False,
) -> Any:
    """A settings dataclass field with its documentation (module doc).

    Args:
        default: the value when nothing sets it; its type is the setting's.
        doc: one sentence for `config get`, `--help` and the docs.
        key: the dotted key when it is not the attribute name (`local.model`).
        env: environment variables honoured besides the app's own.
        choices: the only values allowed, when it is a closed set.
        secret: hidden from `repr`, `config get` and the logs.
    """
    meta = {"key": key, "doc": doc, "env": env, "choices": choices, "secret": secret}
    return field(default=default, repr=not secret, metadata={_META: meta})


def specs(cls: type) -> tuple[Spec, ...]:
    """The `Spec` of every `setting()` field of dataclass `cls`, in order."""
    found = []
    for f in dataclasses.fields(cls):
        meta = f.metadata.get(_META)
        if meta is None:
            continue
        found.append(
            Spec(
                key=meta["key"] or f.name,
                attr=f.name,
                type=type(f.default),
                default=f.default,
                doc=meta["doc"],
                env=meta["env"],
                choices=meta["choices"],
                secret=meta["secret"],
            )
        )
    return tuple(found)


@dataclass(frozen=True)
class ProviderSettings:
    """Who answers and how: the OpenAI-compatible endpoint or the local model,
    the context budget and the reply limits. Both apps' settings extend it."""

    provider: str = setting(
        "openai",
        "Who answers: 'openai' (any OpenAI-compatible endpoint) or 'local'.",
        choices=("openai", "local"),
    )
    base_url: str = setting(
        DEFAULT_BASE_URL,
        "Base URL of the OpenAI-compatible API (Ollama: http://localhost:11434/v1).",
        env=("OPENAI_BASE_URL",),
    )
    model: str = setting("gpt-4o-mini", "Model name sent to the provider.")
    context_tokens: int = setting(
        6000, "Token budget for the context sent with each message."
    )
    max_tokens: int = setting(0, "Longest reply in tokens; 0 = provider default.")
    temperature: float = setting(-1.0, "Sampling temperature; negative = default.")
    timeout: float = setting(60.0, "Seconds to wait for the provider to respond.")
    max_retries: int = setting(3, "Retries on rate limits (429) and 5xx errors.")
    retry_delay: float = setting(
        0.5, "First retry delay in seconds; doubles each retry (Retry-After wins)."
    )
    tools: bool = setting(
        True, "Let Grizz call its memory tools (turn off for models without tools)."
    )
    local_model: str = setting(
        "auto",
        "Local model: 'auto', a name from `grizz local info`, or a .gguf path.",
        key="local.model",
    )
    local_n_ctx: int = setting(
        2048,
        "Context window of the local model in tokens (bounds its memory).",
        key="local.n_ctx",
    )
    local_threads: int = setting(
        0, "CPU threads for the local model; 0 = all cores.", key="local.threads"
    )
    local_fallback: bool = setting(
        True,
        "No key and no provider set: answer with the local model, if installed.",
        key="local.fallback",
    )
    sources: Mapping[str, Source] = field(
        default_factory=dict, compare=False, repr=False
    )
    """Where each key's value came from."""
    warnings: tuple[str, ...] = field(default=(), compare=False, repr=False)
    """Problems that did not stop loading (unknown keys in the file)."""

    @property
    def provider_chosen(self) -> bool:
        """`provider` was set somewhere (not its default): no local fallback."""
        return self.sources.get("provider", "default") != "default"


def coerce(spec: Spec, value: Any, where: str) -> Any:
    """Convert `value` (from TOML or a string) to the spec's type or raise.

    Raises:
        ConfigError: the value has the wrong type or is not one of the choices.
    """
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
        article = "an" if kind[0] in "aeiou" else "a"
        raise ConfigError(
            f"Setting '{spec.key}' from {where} must be {article} {kind}, "
            f"got {value!r}."
        ) from None
    if spec.choices and value not in spec.choices:
        raise ConfigError(
            f"Setting '{spec.key}' from {where} must be one of "
            f"{', '.join(spec.choices)}; got {value!r}."
        )
    return value


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ValueError(value)


def read_toml(path: Path, *, hint: str) -> dict[str, Any]:
    """The TOML file at `path` as a nested dict ({} when it does not exist).

    Raises:
        ConfigError: unreadable or not valid TOML; `hint` says what to do.
    """
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
            f"Config file {path} is not valid TOML ({exc}); {hint}"
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


def resolve(
    all_specs: tuple[Spec, ...],
    *,
    file_values: Mapping[str, Any],
    file_name: str,
    env: Mapping[str, str],
    env_prefix: str,
    overrides: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Source]]:
    """Every spec's value and source: `overrides` > env > file > default.

    Returns:
        ({spec.key: value}, {spec.key: source}).

    Raises:
        ConfigError: a value has the wrong type.
    """
    values: dict[str, Any] = {}
    sources: dict[str, Source] = {}
    for spec in all_specs:
        value: Any = spec.default
        source: Source = "default"
        if spec.key in file_values:
            value, source = coerce(spec, file_values[spec.key], file_name), "file"
        for name in reversed(spec.env_names(env_prefix)):  # first name wins
            if env.get(name):
                value, source = coerce(spec, env[name], f"${name}"), "env"
        if overrides and overrides.get(spec.key) is not None:
            value = coerce(spec, overrides[spec.key], "the command line")
            source = "flag"
        values[spec.key] = value
        sources[spec.key] = source
    return values, sources
