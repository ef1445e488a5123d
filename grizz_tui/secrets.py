"""API keys and device tokens: environment → OS keyring → owner-only file.

Lookup order for a key named NAME (default `openai`):
1. the environment: `GRIZZ_API_KEY`, then `OPENAI_API_KEY` (for NAME `openai`)
   or `GRIZZ_KEY_<NAME>`;
2. the stored key: in the OS keyring (service `grizz`, user NAME) or, where no
   keyring exists, in `secrets.toml` beside the config file (mode 0600).

`grizz key set` keeps each key in exactly one store (saving to the keyring
removes any copy from the file), so the file can be read before the keyring
without changing which key wins. That matters for speed: importing `keyring`
and discovering its backends costs ~0.2 s, which headless machines (no
keyring, key in the file) would otherwise pay on every `grizz ask`.
Keys are never printed or logged; only where they came from is reported.

Must not import: textual, httpx, rich, the store or the core.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from typing import Any, Literal

from grizz_core import paths
from grizz_core.errors import ConfigError

SERVICE = "grizz"
KeySource = Literal["env", "keyring", "file"]


@dataclass(frozen=True)
class FoundKey:
    value: str
    source: KeySource
    where: str
    """Human description of the source, never the key itself."""

    def __repr__(self) -> str:  # keep keys out of logs and tracebacks
        return f"FoundKey(source={self.source!r}, where={self.where!r})"


def env_names(name: str) -> list[str]:
    names = ["GRIZZ_KEY_" + name.upper().replace("-", "_")]
    if name == "openai":
        names = ["GRIZZ_API_KEY", "OPENAI_API_KEY", *names]
    return names


def get_key(name: str = "openai") -> FoundKey | None:
    """Find the key called `name`, or None when no source has it."""
    for var in env_names(name):
        value = os.environ.get(var)
        if value:
            return FoundKey(value.strip(), "env", f"${var}")
    value = _read_file().get(name)
    if value:
        return FoundKey(value, "file", str(paths.secrets_file()))
    backend = _keyring_backend()
    if backend is not None:
        try:
            value = backend.get_password(SERVICE, name)
        except Exception:  # a broken keyring must not stop Grizz
            value = None
        if value:
            return FoundKey(value, "keyring", "the OS keyring")
    return None


def set_key(name: str, value: str) -> tuple[KeySource, str]:
    """Store a key; returns (source, notice) where notice is one line for the user."""
    value = value.strip()
    if not value:
        raise ConfigError("The key is empty; nothing was saved.")
    backend = _keyring_backend()
    if backend is not None:
        try:
            backend.set_password(SERVICE, name, value)
        except Exception:  # fall back to the file, and say so
            pass
        else:
            data = _read_file()
            if data.pop(name, None) is not None:  # one key, one place
                _write_file(data)
            return "keyring", f"Saved key '{name}' in the OS keyring."
    data = _read_file()
    data[name] = value
    _write_file(data)
    where = paths.secrets_file()
    return "file", (
        f"No OS keyring is available; saved key '{name}' to {where} "
        "(readable only by you)."
    )


def delete_key(name: str) -> bool:
    """Remove a stored key from the keyring and the file; True if one existed."""
    removed = False
    backend = _keyring_backend()
    if backend is not None:
        try:
            backend.delete_password(SERVICE, name)
            removed = True
        except Exception:
            pass
    data = _read_file()
    if data.pop(name, None) is not None:
        _write_file(data)
        removed = True
    return removed


def _keyring_backend() -> Any:
    """The usable keyring backend, or None (headless Linux has none)."""
    if os.environ.get("GRIZZ_NO_KEYRING"):
        return None
    try:
        import keyring
        from keyring.backends import fail
    except Exception:
        return None
    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring):
        return None
    chained = getattr(backend, "backends", None)
    if chained is not None and not chained:
        return None
    return backend


def _read_file() -> dict[str, str]:
    path = paths.secrets_file()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        raise ConfigError(
            f"The key file {path} is unreadable; remove it and run `grizz key set`."
        ) from None
    return {k: v for k, v in data.items() if isinstance(v, str)}


def _write_file(data: dict[str, str]) -> None:
    import tomli_w

    path = paths.secrets_file()
    tmp = path.with_suffix(".tmp")
    try:
        paths.ensure_private_dir(path.parent)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(tomli_w.dumps(data))
        os.chmod(tmp, 0o600)
        tmp.replace(path)
    except OSError as exc:
        raise ConfigError(
            f"Could not write the key file {path}: {exc.strerror or exc}; "
            "nothing was saved."
        ) from None
