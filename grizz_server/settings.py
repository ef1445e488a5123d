"""ServerSettings: every knob of grizz-server, from flags > environment > defaults.

Each field's environment variable is `GRIZZ_SERVER_` + its name upper-cased
(`GRIZZ_SERVER_LEASE_MS`); the Redis URL also honours the usual `REDIS_URL`.
Child processes (gateway, workers) get their settings through the environment
the launcher passes down, so one place decides them.

Must not import: redis, websockets, the store, the core.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from grizz_tui import paths
from grizz_tui.errors import ConfigError, GrizzError

ENV_PREFIX = "GRIZZ_SERVER_"
STARTUP_FAILED = 78
"""Exit status of a gateway or worker that cannot start for a reason retrying
will not fix (bad configuration, port taken, unusable database): the launcher
stops the server instead of restarting it (78 is sysexits' EX_CONFIG)."""
SUPERVISED_ENV = "GRIZZ_SERVER_SUPERVISED"
"""Set by the launcher for its children: they leave the one-line message to it."""
REDIS_SCHEMES = ("redis", "rediss", "unix")


class StartupError(ConfigError):
    """A gateway or worker cannot start, and restarting it would not help."""


def startup_failure(exc: BaseException) -> StartupError | None:
    """`exc`, met while a gateway or worker starts, as a `StartupError` when
    restarting the process would not help; None when it might.

    A corrupt database or a bad setting fails the same way on every start.
    A network failure (an unreachable PostgreSQL or Redis, in `exc` or what
    it was raised from) may heal, so the launcher restarts with backoff; so
    does anything that is not a `GrizzError` (an unexpected crash).
    """
    if isinstance(exc, StartupError):
        return exc
    if not isinstance(exc, GrizzError):
        return None
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError | TimeoutError | ConnectionError):
            return None
        seen = seen.__cause__ or seen.__context__
    return StartupError(str(exc))


@dataclass(frozen=True)
class ServerSettings:
    """Effective server settings (times in milliseconds unless named `_s`)."""

    host: str = "127.0.0.1"
    """Interface the gateway listens on."""
    port: int = 8765
    """Gateway port (WebSocket, /healthz and /metrics share it)."""
    workers: int = 2
    """Worker processes the launcher starts."""
    redis_url: str = ""
    """Redis URL; empty = start an embedded redis-server under GRIZZ_HOME."""
    db_url: str = ""
    """Store URL (sqlite:///… or postgresql://…); empty = SQLite under GRIZZ_HOME."""
    lease_ms: int = 30_000
    """How long a worker's claim on a job lasts without renewal."""
    visibility_ms: int = 45_000
    """Idle time after which another worker reclaims a job (> lease_ms)."""
    max_attempts: int = 3
    """Attempts of a job (crashes included) before it is dead-lettered."""
    max_deliveries: int = 5
    """Backstop: deliveries of one stream entry before it is dead-lettered."""
    backoff_ms: int = 2_000
    """Retry delay base: attempt n waits up to base x 2^(n-1) (full jitter)."""
    backoff_cap_ms: int = 60_000
    max_queue_depth: int = 1_000
    """Unfinished jobs past which new messages are refused with `busy`."""
    max_active_per_user: int = 2
    """Unfinished jobs one user may have at once."""
    rate_per_minute: float = 20.0
    """Messages per minute per user (token bucket refill)."""
    rate_burst: int = 5
    """Token bucket size: messages a user may send back to back."""
    max_frame_bytes: int = 256 * 1024
    max_message_chars: int = 32_000
    max_pull: int = 500
    """Largest `limit` a pull may ask for."""
    max_push: int = 500
    """Most changes one push may carry."""
    ping_interval_s: float = 20.0
    ping_timeout_s: float = 20.0
    idle_timeout_s: float = 300.0
    """Close a connection that sent no frame for this long."""
    auth_timeout_s: float = 10.0
    """Time a header-less connection has to send its `hello`."""
    out_ttl_s: int = 3_600
    """How long a finished job's output stream stays readable for resume."""
    jobs_maxlen: int = 100_000
    dlq_maxlen: int = 10_000
    worker_concurrency: int = 16
    """Jobs one worker process runs at once."""
    block_ms: int = 1_000
    """Longest XREADGROUP block; also the retry-promotion period."""
    heartbeat_ms: int = 2_000
    shutdown_grace_s: float = 10.0
    """How long a stopping worker lets running replies finish."""
    restart_limit: int = 5
    """Crashes of one process within a minute before the launcher gives up."""
    log_dir: str = ""
    """Directory of the per-process JSON logs; empty = GRIZZ_HOME/server/logs."""

    def env(self) -> dict[str, str]:
        """These settings as environment variables, for child processes."""
        return {
            ENV_PREFIX + f.name.upper(): str(getattr(self, f.name))
            for f in dataclasses.fields(self)
        }

    def logs_path(self) -> Path:
        return Path(self.log_dir) if self.log_dir else server_dir() / "logs"


def server_dir() -> Path:
    """grizz-server's own files (logs, embedded Redis) under the data dir."""
    return paths.data_dir() / "server"


def mask_password(url: str) -> str:
    """`url` with anything between `user:` and `@` replaced by `***`.

    Works on malformed URLs too, so an error message never shows a password.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    userinfo, _, hostpart = rest.rpartition("@")
    user, colon, _password = userinfo.partition(":")
    return f"{scheme}://{user}{colon}{'***' if colon else ''}@{hostpart}"


def drop_password(url: str) -> str:
    """`url` without its password (`user:secret@host` -> `user@host`)."""
    masked = mask_password(url)
    return masked.replace(":***@", "@", 1) if masked != url else url


def url_problem(url: str, *, schemes: tuple[str, ...] = ()) -> str | None:
    """What is wrong with `url`'s scheme, host or port, in a few words (or None).

    Catches what the Redis and database drivers would otherwise report with a
    traceback: a port that is not a number from 1 to 65535, an unclosed IPv6
    bracket, a scheme the driver does not speak.
    """
    match = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)", url.strip())
    if match is None:  # a database URL parser has its own words for this
        return "it does not start with scheme://" if schemes else None
    scheme, netloc = match.group(1).lower(), match.group(2)
    if schemes and scheme not in schemes:
        wanted = ", ".join(f"{s}://" for s in schemes)
        return f"its scheme '{scheme}://' is not one of {wanted}"
    host = netloc.rpartition("@")[2]
    if host.startswith("["):
        if "]" not in host:
            return f"its IPv6 host '{host}' has no closing ']'"
        port = host.partition("]")[2]
        if port and not port.startswith(":"):
            return f"'{port}' after its IPv6 host is not ':port'"
        port = port[1:]
    else:
        port = host.rpartition(":")[2] if ":" in host else ""
    if ":" in host and not (port.isdigit() and 1 <= int(port) <= 65535):
        return f"its port '{port}' is not a number from 1 to 65535"
    return None


def check_url(url: str, what: str, *, schemes: tuple[str, ...] = ()) -> None:
    """Raise `ConfigError` naming `what` and the bad part of `url` (no password).

    Raises:
        ConfigError: `url_problem` found something.
    """
    problem = url_problem(url, schemes=schemes)
    if problem:
        raise ConfigError(f"{what} {mask_password(url)!r} is not usable: {problem}.")


def load_server_settings(
    overrides: Mapping[str, Any] | None = None, *, env: Mapping[str, str] | None = None
) -> ServerSettings:
    """Resolve settings: `overrides` (flags, None = unset) > env > default.

    Raises:
        ConfigError: a value has the wrong type.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for spec in dataclasses.fields(ServerSettings):
        kind = type(spec.default)
        raw: Any = env.get(ENV_PREFIX + spec.name.upper())
        where = f"${ENV_PREFIX}{spec.name.upper()}"
        if spec.name == "redis_url" and not raw:
            raw, where = env.get("REDIS_URL"), "$REDIS_URL"
        if overrides and overrides.get(spec.name) is not None:
            raw, where = overrides[spec.name], f"--{spec.name.replace('_', '-')}"
        if raw is None or raw == "":
            continue
        try:
            values[spec.name] = kind(raw)
        except (TypeError, ValueError):
            raise ConfigError(
                f"Server setting {where} must be {kind.__name__}, got {raw!r}."
            ) from None
        if spec.name in ("redis_url", "db_url"):
            schemes = REDIS_SCHEMES if spec.name == "redis_url" else ()
            check_url(values[spec.name], f"Server setting {where}", schemes=schemes)
            if spec.name == "redis_url" and not values[spec.name].startswith("unix"):
                db = urlsplit(values[spec.name]).path.strip("/")
                if db and not db.isdigit():
                    raise ConfigError(
                        f"Server setting {where} "
                        f"{mask_password(values[spec.name])!r} is not usable: its "
                        f"database '{db}' is not a number."
                    )
        if spec.name == "port" and not 0 <= values["port"] <= 65535:
            raise ConfigError(
                f"Server setting {where} must be a port from 1 to 65535 "
                f"(or 0 for any free port), got {raw!r}."
            )
    settings = ServerSettings(**values)
    if settings.visibility_ms <= settings.lease_ms:
        raise ConfigError(
            "visibility_ms must be larger than lease_ms, or live jobs would be "
            "reclaimed."
        )
    return settings
