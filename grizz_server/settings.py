"""ServerSettings: every knob of grizz-server, from flags > environment > the
server's TOML file > defaults.

Each setting is declared once, with `setting()`; its environment variable is
`GRIZZ_SERVER_` + its attribute upper-cased (`GRIZZ_SERVER_LEASE_MS`,
`GRIZZ_SERVER_LOCAL_MODEL`); a few also honour the usual names (`REDIS_URL`,
`OPENAI_BASE_URL`, `OPENAI_API_KEY`). The file is `$GRIZZ_SERVER_CONFIG` or
GRIZZ_HOME's `server/server.toml`, keyed like the device's (`lease_ms = 30000`,
`[local] model = "auto"`). The provider the workers call is configured here,
never in the terminal client's config. Child processes (gateway, workers) get
the settings that were set through the environment the launcher passes down,
so one place decides them.

Must not import: redis, websockets, the store, the companion, the providers.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from grizz_core import paths
from grizz_core.errors import ConfigError, GrizzError
from grizz_core.settings import (
    ProviderSettings,
    Source,
    Spec,
    coerce,
    flatten,
    read_toml,
    setting,
    specs,
)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
ENV_PREFIX = "GRIZZ_SERVER_"
CONFIG_ENV = "GRIZZ_SERVER_CONFIG"
"""Names the server's TOML file (default: GRIZZ_HOME's server/server.toml)."""
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
class ServerSettings(ProviderSettings):
    """Effective server settings (times in milliseconds unless named `_s`): the
    provider the workers call (`ProviderSettings`) and the server's own."""

    host: str = setting("127.0.0.1", "Interface the gateway listens on.")
    port: int = setting(
        8765, "Gateway port (WebSocket, /healthz and /metrics share it)."
    )
    workers: int = setting(2, "Worker processes the launcher starts.")
    redis_url: str = setting(
        "",
        "Redis URL; empty = start an embedded redis-server under GRIZZ_HOME.",
        env=("REDIS_URL",),
    )
    db_url: str = setting(
        "",
        "Store URL (sqlite:///… or postgresql://…); empty = SQLite under GRIZZ_HOME.",
    )
    lease_ms: int = setting(
        30_000, "How long a worker's claim on a job lasts without renewal."
    )
    visibility_ms: int = setting(
        45_000, "Idle time after which another worker reclaims a job (> lease_ms)."
    )
    max_attempts: int = setting(
        3, "Attempts of a job (crashes included) before it is dead-lettered."
    )
    max_deliveries: int = setting(
        5, "Backstop: deliveries of one stream entry before it is dead-lettered."
    )
    backoff_ms: int = setting(
        2_000, "Retry delay base: attempt n waits up to base x 2^(n-1) (full jitter)."
    )
    backoff_cap_ms: int = setting(60_000, "Longest retry delay, whatever the attempt.")
    max_queue_depth: int = setting(
        1_000, "Unfinished jobs past which new messages are refused with `busy`."
    )
    max_active_per_user: int = setting(2, "Unfinished jobs one user may have at once.")
    rate_per_minute: float = setting(
        20.0, "Messages per minute per user (token bucket refill)."
    )
    rate_burst: int = setting(
        5, "Token bucket size: messages a user may send back to back."
    )
    max_frame_bytes: int = setting(
        256 * 1024,
        "Largest WebSocket frame, either way (welcome.limits.max_frame_bytes).",
    )
    max_message_chars: int = setting(32_000, "Longest message text a device may send.")
    max_pull: int = setting(500, "Largest `limit` a pull may ask for.")
    max_push: int = setting(500, "Most changes one push may carry.")
    max_clock_skew_s: float = setting(
        300.0,
        "How far ahead of the server's clock a pushed `updated_at` may be; a "
        "later one is stored as the server's time plus this (a device with a "
        "wrong clock cannot freeze a row).",
    )
    ping_interval_s: float = setting(
        20.0, "Seconds between the gateway's WebSocket pings."
    )
    ping_timeout_s: float = setting(
        20.0, "Seconds a ping may wait for its pong before the connection closes."
    )
    idle_timeout_s: float = setting(
        300.0, "Close a connection that sent no frame for this long."
    )
    auth_timeout_s: float = setting(
        10.0, "Time a header-less connection has to send its `hello`."
    )
    out_ttl_s: int = setting(
        3_600, "How long a finished job's output stream stays readable for resume."
    )
    jobs_maxlen: int = setting(
        100_000, "Approximate length the jobs stream is trimmed to."
    )
    dlq_maxlen: int = setting(
        10_000, "Approximate length the dead-letter stream is trimmed to."
    )
    worker_concurrency: int = setting(16, "Jobs one worker process runs at once.")
    block_ms: int = setting(
        1_000, "Longest XREADGROUP block; also the retry-promotion period."
    )
    heartbeat_ms: int = setting(
        2_000, "How often a worker refreshes its health key (read by `check`)."
    )
    shutdown_grace_s: float = setting(
        10.0, "How long a stopping worker lets running replies finish."
    )
    restart_limit: int = setting(
        5, "Crashes of one process within a minute before the launcher gives up."
    )
    log_dir: str = setting(
        "", "Directory of the per-process JSON logs; empty = GRIZZ_HOME/server/logs."
    )
    log_max_bytes: int = setting(
        10 * 1024 * 1024,
        "Size at which a per-process log file is rotated (0 = never rotate).",
    )
    log_backups: int = setting(
        5, "Rotated log files kept per process (`gateway.log.1` … `.N`)."
    )
    trusted_proxies: str = setting(
        "",
        "Comma-separated addresses or networks (CIDR) of reverse proxies: when "
        "the peer is one, logs name the client from `X-Forwarded-For`.",
    )
    metrics_token: str = setting(
        "",
        "Bearer token `GET /metrics` requires (401 without it); empty = open.",
        secret=True,
    )
    api_key: str = setting(
        "",
        "Key of the OpenAI-compatible endpoint the workers call; empty = none.",
        env=("OPENAI_API_KEY",),
        secret=True,
    )

    def env(self) -> dict[str, str]:
        """The settings that were set or differ from their default, as
        environment variables for child processes: a child then resolves exactly
        what its parent did, down to whether `provider` was chosen (the local
        fallback)."""
        return {
            env_name(spec): str(getattr(self, spec.attr))
            for spec in SPECS
            if getattr(self, spec.attr) != spec.default
            or self.sources.get(spec.key, "default") != "default"
        }

    def logs_path(self) -> Path:
        return Path(self.log_dir) if self.log_dir else server_dir() / "logs"


SPECS: tuple[Spec, ...] = specs(ServerSettings)
SPEC_BY_KEY: dict[str, Spec] = {spec.key: spec for spec in SPECS}


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


def proxy_networks(text: str) -> tuple[IPNetwork, ...]:
    """`trusted_proxies` parsed ("10.0.0.1, 10.1.0.0/16").

    Raises:
        ValueError: an entry is not an address or network.
    """
    return tuple(
        ipaddress.ip_network(part.strip(), strict=False)
        for part in text.split(",")
        if part.strip()
    )


def env_name(spec: Spec) -> str:
    """A server setting's own environment variable: `GRIZZ_SERVER_LEASE_MS`."""
    return ENV_PREFIX + spec.attr.upper()


def config_path(env: Mapping[str, str]) -> Path:
    """The server's TOML file: `$GRIZZ_SERVER_CONFIG`, or server.toml in the
    server's directory under GRIZZ_HOME."""
    named = env.get(CONFIG_ENV)
    return Path(named) if named else server_dir() / "server.toml"


def load_server_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    path: Path | None = None,
) -> ServerSettings:
    """Resolve settings: `overrides` (flags, None = unset) > env > the TOML
    file (`config_path`) > default.

    Raises:
        ConfigError: a value has the wrong type, or the file is not TOML.
    """
    env = os.environ if env is None else env
    path = path or config_path(env)
    file_values = flatten(read_toml(path, hint="fix it or remove it."))
    warnings = tuple(
        f"Ignoring unknown server setting '{key}' in {path}."
        for key in file_values
        if key not in SPEC_BY_KEY
    )
    values: dict[str, Any] = {}
    sources: dict[str, Source] = {}
    for spec in SPECS:
        raw, where, source = _raw_value(spec, overrides, env, file_values, path)
        if raw is None or raw == "":
            continue
        values[spec.attr] = _typed(spec, raw, where)
        sources[spec.key] = source
        _check_value(spec.attr, values[spec.attr], raw, where)
    settings = ServerSettings(**values, sources=sources, warnings=warnings)
    if settings.visibility_ms <= settings.lease_ms:
        raise ConfigError(
            "visibility_ms must be larger than lease_ms, or live jobs would be "
            "reclaimed."
        )
    return settings


def _raw_value(
    spec: Spec,
    overrides: Mapping[str, Any] | None,
    env: Mapping[str, str],
    file_values: Mapping[str, Any],
    path: Path,
) -> tuple[Any, str, Source]:
    """The highest-precedence raw value of `spec`, where it came from, its source."""
    if overrides and overrides.get(spec.attr) is not None:
        return overrides[spec.attr], f"--{spec.attr.replace('_', '-')}", "flag"
    for name in (env_name(spec), *spec.env):
        if env.get(name):
            return env[name], f"${name}", "env"
    if spec.key in file_values:
        return file_values[spec.key], f"'{spec.key}' in {path}", "file"
    return None, "", "default"


def _typed(spec: Spec, raw: Any, where: str) -> Any:
    kind = spec.type
    try:
        if kind is bool:
            return coerce(spec, raw, where)
        if isinstance(raw, bool) or (kind is int and isinstance(raw, float)):
            raise ValueError(raw)
        value = kind(raw)
    except (TypeError, ValueError, ConfigError):
        raise ConfigError(
            f"Server setting {where} must be {kind.__name__}, got {raw!r}."
        ) from None
    if spec.choices and value not in spec.choices:
        raise ConfigError(
            f"Server setting {where} must be one of {', '.join(spec.choices)}; "
            f"got {raw!r}."
        )
    return value


def _check_value(name: str, value: Any, raw: Any, where: str) -> None:
    """URLs and the port: refuse what the drivers would fail on with a traceback."""
    if name in ("redis_url", "db_url"):
        schemes = REDIS_SCHEMES if name == "redis_url" else ()
        check_url(value, f"Server setting {where}", schemes=schemes)
        if name == "redis_url" and not value.startswith("unix"):
            db = urlsplit(value).path.strip("/")
            if db and not db.isdigit():
                raise ConfigError(
                    f"Server setting {where} {mask_password(value)!r} is not "
                    f"usable: its database '{db}' is not a number."
                )
    if name == "trusted_proxies":
        try:
            proxy_networks(value)
        except ValueError as exc:
            raise ConfigError(
                f"Server setting {where} must list IP addresses or networks: {exc}."
            ) from None
    if name == "port" and not 0 <= value <= 65535:
        raise ConfigError(
            f"Server setting {where} must be a port from 1 to 65535 "
            f"(or 0 for any free port), got {raw!r}."
        )
