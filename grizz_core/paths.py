"""Where Grizz keeps its files. The only module that knows file locations.

`GRIZZ_HOME` relocates everything (config, data, secrets) into one directory,
which is what tests and scripts use. Without it, platformdirs gives the usual
per-OS config and data directories. `GRIZZ_CONFIG_FILE` points at one config
file directly.

Must not import: textual, httpx, rich, the store or the core.
"""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "grizz"


def grizz_home() -> Path | None:
    """The directory named by `GRIZZ_HOME`, if set."""
    value = os.environ.get("GRIZZ_HOME")
    return Path(value).expanduser() if value else None


def config_dir() -> Path:
    """Directory holding `config.toml` (and the secrets file fallback)."""
    home = grizz_home()
    if home is not None:
        return home
    from platformdirs import user_config_path

    return user_config_path(APP_NAME, appauthor=False)


def data_dir() -> Path:
    """Directory holding the database and other data."""
    home = grizz_home()
    if home is not None:
        return home
    from platformdirs import user_data_path

    return user_data_path(APP_NAME, appauthor=False)


def config_file() -> Path:
    """The TOML config file (`GRIZZ_CONFIG_FILE` wins over the directory)."""
    explicit = os.environ.get("GRIZZ_CONFIG_FILE")
    if explicit:
        return Path(explicit).expanduser()
    return config_dir() / "config.toml"


def secrets_file() -> Path:
    """The owner-only (0600) key file used when no OS keyring is available."""
    return config_dir() / "secrets.toml"


def db_path() -> Path:
    """The local SQLite database (`GRIZZ_DB` overrides it)."""
    explicit = os.environ.get("GRIZZ_DB")
    if explicit:
        return Path(explicit).expanduser()
    return data_dir() / "grizz.db"


def models_dir() -> Path:
    """Where the local model is assembled from its packaged parts (a cache).

    `GRIZZ_MODELS_DIR` wins; then `GRIZZ_HOME/models`; then the per-OS cache
    directory. Deleting it only costs a rebuild on the next local reply.
    """
    explicit = os.environ.get("GRIZZ_MODELS_DIR")
    if explicit:
        return Path(explicit).expanduser()
    home = grizz_home()
    if home is not None:
        return home / "models"
    from platformdirs import user_cache_path

    return user_cache_path(APP_NAME, appauthor=False) / "models"


def ensure_private_dir(path: Path) -> Path:
    """Create `path` (and parents) readable only by the owner; return it."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path
