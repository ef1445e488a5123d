"""Before the launcher starts anything: can Redis, the store and the provider
be used? And, once a child stopped, why (the last reason in its JSON log).

Must not import: websockets, the core's session, textual.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from grizz_core.errors import ConfigError
from grizz_server.settings import ServerSettings, mask_password


def safe_url(url: str) -> str:
    """`url` with any password replaced by `***` (for logs and messages)."""
    return mask_password(url)


async def preflight(settings: ServerSettings) -> None:
    """Fail fast, in one sentence, on an unreachable Redis, store or provider setup.

    Raises:
        ConfigError: Redis cannot be reached.
        GrizzError: the store or the provider configuration is unusable.
    """
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    from grizz_server.store import ServerStore, default_db_url
    from grizz_server.worker.runner import make_worker_provider

    redis = Redis.from_url(settings.redis_url, socket_connect_timeout=3)
    try:
        await redis.ping()
    except (RedisError, OSError) as exc:
        raise ConfigError(
            f"Cannot reach Redis at {safe_url(settings.redis_url)} ({_reason(exc)}); "
            "start it, fix REDIS_URL, or unset REDIS_URL to use an embedded one."
        ) from None
    finally:
        await redis.aclose()
    store = await ServerStore.open(settings.db_url or default_db_url())
    await store.close()
    provider = make_worker_provider(settings, http="httpx")
    await provider.aclose()


def child_reason(log_file: Path, offset: int = 0) -> str:
    """Why a child stopped: the `reason` of its last record past `offset`."""
    with contextlib.suppress(OSError), log_file.open("rb") as handle:
        if os.fstat(handle.fileno()).st_size < offset:
            offset = 0  # rotated since: the reason is in the new file
        handle.seek(offset)
        for line in reversed(handle.read().decode(errors="replace").splitlines()):
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and record.get("reason"):
                    reason = str(record["reason"]).rstrip(".")
                    return (reason[:1].lower() + reason[1:]) + "."
    return ""


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.rstrip(".")
