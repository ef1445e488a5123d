"""How a device authenticates: a `Bearer` header, or a `hello` frame first.

`from_header` checks the `Authorization` header before the upgrade (the
server answers 401 when it gives None); `from_hello` waits up to
`auth_timeout_s` for a `hello` frame from a device that cannot send headers.
Every failure is counted and logged with its reason and the remote address,
never the token; behind a trusted reverse proxy (`trusted_proxies`) the
address is the client's from `X-Forwarded-For`, and the proxy's is logged as
`proxy`.

Must not import: the gateway's server (it builds on this), the core's session
or provider, textual.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from grizz_core import protocol as p
from grizz_core.errors import ProtocolError
from grizz_server.gateway.connection import CLOSE_BAD_HELLO, CLOSE_UNAUTHORIZED
from grizz_server.gateway.context import GatewayContext
from grizz_server.settings import IPNetwork, proxy_networks
from grizz_server.store import Principal

log = logging.getLogger(__name__)


async def from_header(
    ctx: GatewayContext, connection: ServerConnection, header: str
) -> Principal | None:
    """The device an `Authorization: Bearer <token>` header names, if any.

    A header that is not `Bearer <token>`, or names an unknown or revoked
    token, is counted and logged (never the token), and gives None: the
    caller answers 401 before the upgrade.
    """
    scheme, _, token = header.partition(" ")
    principal = None
    if scheme.lower() == "bearer" and token.strip():
        principal = await ctx.store.authenticate(token.strip())
        reason = "unknown or revoked token"
    else:
        reason = "Authorization header is not 'Bearer <token>'"
    if principal is None:
        _failed(ctx, connection, reason)
        ctx.metrics.inc("grizz_refusals_total", code=p.UNAUTHORIZED)
    return principal


async def from_hello(ctx: GatewayContext, ws: ServerConnection) -> Principal | None:
    """Wait for a `hello` with a token (devices that cannot send headers).

    A first frame that is not a `hello` (or none in time) is `unauthorized`
    and closes with 4401; a `hello` that is malformed (`bad_frame`) or asks
    for another protocol version (`unsupported_protocol`) says so and
    closes with 4400, so a client does not take it for a bad token.
    """
    refusal: ProtocolError | None = None
    principal = None
    reason = "no hello frame"
    try:
        async with asyncio.timeout(ctx.settings.auth_timeout_s):
            raw = await ws.recv()
        reason = "the first frame is not a hello"
        frame = p.parse_frame(raw, allowed=(p.Hello,))
        ctx.metrics.inc("grizz_frames_received_total", type=frame.TYPE)
        if isinstance(frame, p.Hello) and frame.protocol != p.PROTOCOL_VERSION:
            raise ProtocolError(
                f"This server speaks protocol {p.PROTOCOL_VERSION}; the client "
                f"asked for {frame.protocol}.",
                code=p.UNSUPPORTED_PROTOCOL,
            )
        reason = "unknown or revoked token"
        principal = (
            await ctx.store.authenticate(frame.token)
            if isinstance(frame, p.Hello)
            else None
        )
    except ProtocolError as exc:
        if exc.code in (p.BAD_FRAME, p.BAD_JSON):
            ctx.metrics.inc("grizz_bad_frames_total")
        if exc.code == p.BAD_FRAME and _type_of(raw) == p.Hello.TYPE:
            # a malformed hello is a hello received all the same
            ctx.metrics.inc("grizz_frames_received_total", type=p.Hello.TYPE)
        if exc.code in (p.BAD_FRAME, p.UNSUPPORTED_PROTOCOL):
            refusal = exc
            reason = f"bad hello: {exc.message}"
    except TimeoutError:
        reason = f"no hello frame within {ctx.settings.auth_timeout_s:g} s"
    except ConnectionClosed:
        return None
    if principal is not None:
        return principal
    await _refuse(ctx, ws, refusal, reason)
    return None


async def _refuse(
    ctx: GatewayContext,
    ws: ServerConnection,
    refusal: ProtocolError | None,
    reason: str,
) -> None:
    """Count and log a failed `hello`, say why, and close (4401 or 4400)."""
    _failed(ctx, ws, reason)
    if refusal is None:
        refusal = ProtocolError(
            "Authenticate first: send an Authorization: Bearer header or a "
            "'hello' frame with a valid device token.",
            code=p.UNAUTHORIZED,
        )
    ctx.metrics.inc("grizz_refusals_total", code=refusal.code)
    close = (
        (CLOSE_UNAUTHORIZED, "unauthorized")
        if refusal.code == p.UNAUTHORIZED
        else (CLOSE_BAD_HELLO, "bad hello")
    )
    with contextlib.suppress(ConnectionClosed):
        await ws.send(p.dump_frame(p.error_frame(refusal)))
        await ws.close(*close)


def _failed(ctx: GatewayContext, ws: ServerConnection, reason: str) -> None:
    """Count and log one failed authentication (its reason, never the token)."""
    ctx.metrics.inc("grizz_auth_failures_total")
    remote = ws.remote_address
    peer = f"{remote[0]}:{remote[1]}" if remote else ""
    request = getattr(ws, "request", None)
    forwarded = request.headers.get("X-Forwarded-For", "") if request else ""
    client = client_address(
        str(remote[0]) if remote else "",
        forwarded,
        proxy_networks(ctx.settings.trusted_proxies),
    )
    extra = {"reason": reason, "remote": peer}
    if remote and client != str(remote[0]):
        extra |= {"remote": client, "proxy": peer}
    log.warning("authentication failed", extra=extra)


def client_address(
    peer: str, forwarded_for: str, trusted: tuple[IPNetwork, ...]
) -> str:
    """The client's address: `peer`, or, when `peer` is a trusted proxy, the
    right-most address of `X-Forwarded-For` that is not a trusted proxy
    (entries left of it could be forged by the client)."""
    if not _trusted(peer, trusted):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


def _trusted(address: str, trusted: tuple[IPNetwork, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def _type_of(raw: str | bytes) -> str:
    """The `type` of a frame that failed to parse ("" if it has none)."""
    try:
        data = json.loads(raw)
    except (ValueError, TypeError, RecursionError):
        return ""
    kind = data.get("type") if isinstance(data, dict) else None
    return kind if isinstance(kind, str) else ""
