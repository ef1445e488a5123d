"""Cutting off the open connections of a revoked device token, on every gateway.

Two paths, so the bound holds even when one fails:

- every `TOKEN_CHECK_S` seconds each gateway re-checks the tokens of all its
  connections in the store (`Gateway.check_tokens`, one query per 500) and
  closes with 4401 "token revoked" those revoked or gone: the guaranteed bound;
- `announce_revoked` publishes the token id on the `keys.TOKENS_REVOKED`
  channel; each gateway's hub hears it and re-checks the matching connections
  at once. The message is only a nudge: a connection is closed only after the
  store says its token is revoked, so a forged or stale message closes nothing.

Must not import: the rest of the gateway, the launcher or health (the admin
command finds the Redis to announce on), the core, textual.
"""

from __future__ import annotations

import logging

from redis import Redis
from redis.exceptions import RedisError

from grizz_server import keys

log = logging.getLogger(__name__)

TOKEN_CHECK_S = 30.0
"""Seconds between a gateway's re-checks of its connections' tokens in the store."""
CLOSE_REASON = "token revoked"


def announce_revoked(token_ref: str, redis_url: str) -> bool:
    """Tell every gateway that token `token_ref` (id or unique prefix) was revoked.

    Call it after `ServerStore.revoke_token` succeeded. Best effort: returns
    False (and logs why, never raising) when no Redis is known (`redis_url`
    is empty) or reachable; the gateways' periodic re-check still closes the
    connections within `TOKEN_CHECK_S`.
    """
    if not redis_url:
        return False
    try:
        client = Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
        try:
            client.publish(keys.TOKENS_REVOKED, token_ref.strip().lower())
        finally:
            client.close()
    except (RedisError, OSError) as exc:
        log.warning("could not announce a revoked token", extra={"error": str(exc)})
        return False
    return True


def matches(token_id: str, token_ref: str) -> bool:
    """Whether an announced `token_ref` (id or prefix of ≥ 4) may name `token_id`."""
    return len(token_ref) >= 4 and token_id.startswith(token_ref)
