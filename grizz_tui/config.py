"""Grizz settings: defaults, the TOML config file, `GRIZZ_*` environment variables.

Precedence, highest first: command-line flag > environment > config file > default.
Each setting has a dotted key (`model`, `tui.theme`) used by `grizz config get|set`
and in the file (`[tui]` table, `theme = ...`). Its environment variable is
`GRIZZ_` + the key upper-cased with `.` → `__` (`GRIZZ_TUI__THEME`); a few keys
also honour the variables other OpenAI tools use (`OPENAI_BASE_URL`).

This is plain `tomllib` + dataclasses rather than pydantic-settings: the latter
costs ~0.35 s of import time on the `grizz ask` path (measured, see
docs/benchmarks.md) for validation we do in 60 lines here.

Must not import: textual, httpx, rich, the store, the companion or the providers.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grizz_core import paths
from grizz_core.errors import ConfigError
from grizz_core.settings import (
    DEFAULT_BASE_URL,
    ProviderSettings,
    Source,
    Spec,
    coerce,
    flatten,
    read_toml,
    resolve,
    setting,
    specs,
)

__all__ = ["DEFAULT_BASE_URL", "SPECS", "Settings", "Source", "Spec", "load_settings"]

ENV_PREFIX = "GRIZZ_"

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
    ("edit", "e", "edit the focused message of yours and resend it."),
)
"""The app's rebindable keys, declared once: each is the setting
`tui.keys.<id>` (held in `Settings.tui_keys`) and a binding id of the app."""
KEYS_PREFIX = "tui.keys."


@dataclass(frozen=True)
class Settings(ProviderSettings):
    """Effective device settings: the provider's (`ProviderSettings`) and the
    device's own. Attribute names are keys with `.` → `_`."""

    api_key_name: str = setting(
        "openai", "Name of the stored key to use (see `grizz key set NAME`)."
    )
    timezone: str = setting(
        "", "IANA time zone that decides what 'today' is; empty = this machine's."
    )
    max_input_bytes: int = setting(
        1_000_000, "Largest prompt `grizz ask` accepts (arguments plus stdin)."
    )
    tui_theme: str = setting(
        "textual-dark", "Textual theme of the app.", key="tui.theme"
    )
    tui_newline_key: str = setting(
        "ctrl+j",
        "Key that inserts a newline in the composer (Enter sends).",
        key="tui.newline_key",
    )
    server_url: str = setting(
        "", "Sync server WebSocket URL; empty = direct mode.", key="server.url"
    )
    sync_fallback: bool = setting(
        True,
        "When the sync server is unreachable, let `grizz ask` answer directly "
        "(with a usable provider) and sync both messages later.",
        key="sync.fallback",
    )
    sync_ca_file: str = setting(
        "",
        "PEM file of the CA that signed the sync server's certificate (wss://); "
        "empty = the system's CA store.",
        key="sync.ca_file",
    )
    sync_insecure: bool = setting(
        False,
        "Allow sending the device token over plain ws:// to a host that is not "
        "this machine (only on a network you trust).",
        key="sync.insecure",
    )
    tui_keys: Mapping[str, str] = field(
        default_factory=lambda: {name: keys for name, keys, _ in TUI_KEYS},
        compare=False,
    )
    """{binding id: keys} from the `tui.keys.*` settings (`TUI_KEYS`)."""

    def get(self, key: str) -> Any:
        spec = spec_for(key)
        if key.startswith(KEYS_PREFIX):
            return self.tui_keys[key.removeprefix(KEYS_PREFIX)]
        return getattr(self, spec.attr)


SPECS: tuple[Spec, ...] = (
    *specs(Settings),
    *(
        Spec(
            key=KEYS_PREFIX + name,
            attr="tui_keys",
            type=str,
            default=keys,
            doc=f"App key(s), comma-separated: {doc}",
        )
        for name, keys, doc in TUI_KEYS
    ),
)
SPEC_BY_KEY: dict[str, Spec] = {spec.key: spec for spec in SPECS}


def spec_for(key: str) -> Spec:
    try:
        return SPEC_BY_KEY[key]
    except KeyError:
        known = ", ".join(SPEC_BY_KEY)
        raise ConfigError(
            f"Unknown setting '{key}'. Known settings: {known}."
        ) from None


def read_config_file(path: Path | None = None) -> dict[str, Any]:
    """The config file as a nested dict ({} when it does not exist)."""
    return read_toml(
        path or paths.config_file(),
        hint="fix it or run `grizz config path` to find and remove it.",
    )


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
    values, sources = resolve(
        SPECS,
        file_values=file_values,
        file_name=f"{path}",
        env=env,
        env_prefix=ENV_PREFIX,
        overrides=overrides,
    )
    fields: dict[str, Any] = {"tui_keys": {}}
    for spec in SPECS:
        if spec.key.startswith(KEYS_PREFIX):
            fields["tui_keys"][spec.key.removeprefix(KEYS_PREFIX)] = values[spec.key]
        else:
            fields[spec.attr] = values[spec.key]
    return Settings(**fields, sources=sources, warnings=tuple(warnings))


def check_timezone(value: Any) -> str | None:
    if not value:
        return None
    from zoneinfo import ZoneInfo

    try:
        ZoneInfo(value)
    except (ValueError, OSError, LookupError):
        return "an IANA time zone such as Europe/Paris (or empty for this machine's)"
    return None


def _url_check(schemes: tuple[str, ...], empty_ok: bool) -> Any:
    def check(value: Any) -> str | None:
        from urllib.parse import urlsplit

        if empty_ok and not value:
            return None
        parts = urlsplit(value)
        if parts.scheme in schemes and parts.netloc:
            return None
        return "a URL starting with " + " or ".join(f"{s}://" for s in schemes)

    return check


check_base_url = _url_check(("http", "https"), empty_ok=False)
check_server_url = _url_check(("ws", "wss"), empty_ok=True)
CHECKS: dict[str, Any] = {
    spec.key: check
    for spec in SPECS
    if (check := globals().get(f"check_{spec.attr}")) is not None
}
"""Checks `grizz config set` makes beyond the type: key -> (value -> what it
must be, or None when it is fine). A setting's check is `check_<attribute>`
(its name is written once, in its field)."""


def set_value(key: str, raw: str, path: Path | None = None) -> Any:
    """Validate `raw` for `key` and write it to the config file; return it.

    Raises:
        ConfigError: unknown key, wrong type, or a value `CHECKS` refuses;
            nothing is written then.
    """
    spec = spec_for(key)
    value = coerce(spec, raw, "the command line")
    check = CHECKS.get(key)
    problem = check(value) if check is not None else None
    if problem is not None:
        raise ConfigError(f"Setting '{key}' must be {problem}; got {raw!r}.")
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
    tmp = path.with_suffix(".toml.tmp")
    try:
        paths.ensure_private_dir(path.parent)
        tmp.write_text(tomli_w.dumps(table), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise ConfigError(
            f"Could not write the config file {path}: {exc.strerror or exc}; "
            "nothing was changed."
        ) from None


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
            settings.get(spec.key),
            settings.sources.get(spec.key, "default"),
        )
        for spec in SPECS
    ]


def replace(settings: Settings, **changes: Any) -> Settings:
    """A copy of `settings` with some attributes changed (tests, the app)."""
    return dataclasses.replace(settings, **changes)
