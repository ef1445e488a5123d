"""The gateway process: `websockets` server, token auth, /healthz and /metrics.

HTTP and WebSocket share one port: `process_request` answers `GET /healthz`
and `GET /metrics` itself, rejects a bad `Authorization: Bearer` token with
401 before the upgrade, and lets everything else upgrade. A device that
cannot send headers authenticates with a `hello` frame within
`auth_timeout_s` instead. On SIGTERM the server stops accepting and closes
every connection with 1001; jobs keep running in the workers and devices
resume on reconnect. A port that cannot be bound raises `StartupError`, so
the process exits with `STARTUP_FAILED` and the launcher stops instead of
restarting it.

Must not import: the core's session or provider, textual.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
from http import HTTPStatus
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from grizz_core import protocol as p
from grizz_core.errors import GrizzError, ProtocolError
from grizz_server.aio import settle_heap
from grizz_server.gateway import revocation
from grizz_server.gateway.connection import (
    CLOSE_BAD_HELLO,
    CLOSE_UNAUTHORIZED,
    Connection,
)
from grizz_server.gateway.hub import Hub
from grizz_server.gateway.metrics import Metrics
from grizz_server.gateway.streams import JobStreams
from grizz_server.logs import one_line
from grizz_server.queue.admission import JobAdmission
from grizz_server.queue.jobs import connect_redis
from grizz_server.queue.pipeline import ScriptPipeline
from grizz_server.settings import ServerSettings, StartupError, startup_failure
from grizz_server.store import Principal, ServerStore

log = logging.getLogger(__name__)


class Gateway:
    """Shared state of one gateway process: Redis, the store, the hub, metrics."""

    def __init__(
        self, settings: ServerSettings, redis: Redis, store: ServerStore
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.store = store
        self.queue = JobAdmission(ScriptPipeline(redis), settings)
        self.metrics = Metrics()
        self.hub = Hub(redis, on_reconnect=self._resync, on_revoked=self.check_tokens)
        self.streams = JobStreams(redis, settings.block_ms)
        self.connections = 0
        self.token_check_s = revocation.TOKEN_CHECK_S
        """Seconds between the sweeps that re-check every connection's token."""

    async def publish(self, user_id: str, event: dict[str, Any]) -> None:
        """Send `event` to every device of `user_id`, on every gateway.

        Best effort, tried twice: after a Redis restart the first command on a
        pooled connection fails, and a duplicate event is harmless (devices
        apply changes by id and follow a job once). A device that still misses
        one catches up with `pull`.
        """
        for attempt in (1, 2):
            try:
                await self.queue.announce(user_id, event)
                return
            except (RedisError, OSError) as exc:
                if attempt == 2:
                    log.warning(
                        "could not publish a live event", extra={"error": str(exc)}
                    )

    async def _resync(self, user_id: str) -> None:
        """After a pub/sub gap: tell the user's devices what they may have missed."""
        await self.streams.register_again([user_id])  # Redis may have lost it
        cursor = await self.store.for_user(user_id).current_seq()
        for event in await self.queue.job_events(user_id):  # replies to watch
            await self.hub.broadcast(
                user_id, {**event, "cursor": cursor, "changes": []}
            )
        await self.hub.broadcast(
            user_id, {"kind": "changed", "cursor": cursor, "changes": []}
        )

    async def sweep_tokens(self) -> None:
        """Every `token_check_s`, close the connections whose token was revoked.

        One task for the whole gateway, one query per 500 open tokens (a task
        per connection cost ~1.7 KiB each: 10,000 idle devices went over
        300 MB). Checked every second, so a test may shorten the period.
        """
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(min(1.0, self.token_check_s))
            if loop.time() - last >= self.token_check_s:
                last = loop.time()
                await self.check_tokens()

    async def check_tokens(self, token_ref: str = "") -> None:
        """Close the connections whose token the store says is revoked.

        All open connections (the periodic sweep), or only those whose token
        matches `token_ref` (a revocation announced on the hub: a nudge, so a
        forged one closes nothing). One query per 500 tokens.
        """
        listeners = [
            listener
            for group in list(self.hub.users.values())
            for listener in list(group)
            if (principal := getattr(listener, "principal", None)) is not None
            and (not token_ref or revocation.matches(principal.token_id, token_ref))
        ]
        if not listeners:
            return
        try:
            live = await self.store.live_tokens(
                [c.principal.token_id for c in listeners]  # type: ignore[attr-defined]
            )
        except Exception as exc:  # a database hiccup must not drop every device
            log.warning(
                "could not re-check device tokens", extra={"error": one_line(exc)}
            )
            return
        for listener in listeners:
            if listener.principal.token_id not in live:  # type: ignore[attr-defined]
                await listener.close_revoked()  # type: ignore[attr-defined]

    # -- HTTP -----------------------------------------------------------------

    async def process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/healthz":
            return await self._healthz(connection)
        if path == "/metrics":
            text = await self.metrics.render(self)
            return _response(
                connection, HTTPStatus.OK, text, "text/plain; version=0.0.4"
            )
        header = request.headers.get("Authorization", "")
        if not header:
            return None  # authenticate with a `hello` frame instead
        scheme, _, token = header.partition(" ")
        principal = None
        if scheme.lower() == "bearer" and token.strip():
            principal = await self.store.authenticate(token.strip())
            reason = "unknown or revoked token"
        else:
            reason = "Authorization header is not 'Bearer <token>'"
        if principal is None:
            self._auth_failed(connection, reason)
            self.metrics.inc("grizz_refusals_total", code=p.UNAUTHORIZED)
            return _response(
                connection,
                HTTPStatus.UNAUTHORIZED,
                "Unknown or revoked device token.\n",
                "text/plain",
            )
        connection.grizz_principal = principal  # type: ignore[attr-defined]
        return None

    def _auth_failed(self, ws: ServerConnection, reason: str) -> None:
        """Count and log one failed authentication (its reason, never the token)."""
        self.metrics.inc("grizz_auth_failures_total")
        remote = ws.remote_address
        log.warning(
            "authentication failed",
            extra={
                "reason": reason,
                "remote": f"{remote[0]}:{remote[1]}" if remote else "",
            },
        )

    async def _healthz(self, connection: ServerConnection) -> Response:
        problems: list[str] = []
        try:
            await self.redis.ping()
        except (RedisError, OSError):
            problems.append("redis unreachable")
        try:
            await self.store.check()
        except GrizzError as exc:
            problems.append(f"store: {exc}")
        status = HTTPStatus.SERVICE_UNAVAILABLE if problems else HTTPStatus.OK
        body = json.dumps({"ok": not problems, "problems": problems}) + "\n"
        return _response(connection, status, body, "application/json")

    # -- WebSocket ------------------------------------------------------------

    async def handler(self, ws: ServerConnection) -> None:
        principal: Principal | None = getattr(ws, "grizz_principal", None)
        if principal is None:
            principal = await self._hello(ws)
            if principal is None:
                return
        self.connections += 1
        try:
            await Connection(self, ws, principal).serve()
        finally:
            self.connections -= 1

    async def _hello(self, ws: ServerConnection) -> Principal | None:
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
            async with asyncio.timeout(self.settings.auth_timeout_s):
                raw = await ws.recv()
            reason = "the first frame is not a hello"
            frame = p.parse_frame(raw, allowed=(p.Hello,))
            self.metrics.inc("grizz_frames_received_total", type=frame.TYPE)
            if isinstance(frame, p.Hello) and frame.protocol != p.PROTOCOL_VERSION:
                raise ProtocolError(
                    f"This server speaks protocol {p.PROTOCOL_VERSION}; the client "
                    f"asked for {frame.protocol}.",
                    code=p.UNSUPPORTED_PROTOCOL,
                )
            reason = "unknown or revoked token"
            principal = (
                await self.store.authenticate(frame.token)
                if isinstance(frame, p.Hello)
                else None
            )
        except ProtocolError as exc:
            if exc.code in (p.BAD_FRAME, p.BAD_JSON):
                self.metrics.inc("grizz_bad_frames_total")
            if exc.code == p.BAD_FRAME and _type_of(raw) == p.Hello.TYPE:
                # a malformed hello is a hello received all the same
                self.metrics.inc("grizz_frames_received_total", type=p.Hello.TYPE)
            if exc.code in (p.BAD_FRAME, p.UNSUPPORTED_PROTOCOL):
                refusal = exc
                reason = f"bad hello: {exc.message}"
        except TimeoutError:
            reason = f"no hello frame within {self.settings.auth_timeout_s:g} s"
        except ConnectionClosed:
            return None
        if principal is not None:
            return principal
        self._auth_failed(ws, reason)
        if refusal is None:
            refusal = ProtocolError(
                "Authenticate first: send an Authorization: Bearer header or a "
                "'hello' frame with a valid device token.",
                code=p.UNAUTHORIZED,
            )
        self.metrics.inc("grizz_refusals_total", code=refusal.code)
        close = (
            (CLOSE_UNAUTHORIZED, "unauthorized")
            if refusal.code == p.UNAUTHORIZED
            else (CLOSE_BAD_HELLO, "bad hello")
        )
        with contextlib.suppress(ConnectionClosed):
            await ws.send(p.dump_frame(p.error_frame(refusal)))
            await ws.close(*close)
        return None


def _type_of(raw: str | bytes) -> str:
    """The `type` of a frame that failed to parse ("" if it has none)."""
    try:
        data = json.loads(raw)
    except (ValueError, TypeError, RecursionError):
        return ""
    kind = data.get("type") if isinstance(data, dict) else None
    return kind if isinstance(kind, str) else ""


def _response(
    connection: ServerConnection, status: HTTPStatus, body: str, content_type: str
) -> Response:
    response = connection.respond(status, body)
    response.headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body.encode()))),
            ("Connection", "close"),
        ]
    )
    return response


class RunningGateway:
    """A gateway serving on a socket: `async with RunningGateway(settings) as gw`."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.gateway: Gateway | None = None
        self.port = 0
        self._server: Any = None
        self._sweep: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RunningGateway:
        from grizz_server.store import ServerStore, default_db_url

        s = self.settings
        redis = connect_redis(s.redis_url)
        try:
            store = await ServerStore.open(s.db_url or default_db_url())
        except BaseException:
            await redis.aclose()
            raise
        self.gateway = gateway = Gateway(s, redis, store)
        await gateway.hub.start()
        await gateway.streams.start()
        sweep = self._sweep = asyncio.create_task(gateway.sweep_tokens())
        try:
            self._server = await serve(
                gateway.handler,
                s.host,
                s.port,
                process_request=gateway.process_request,
                max_size=s.max_frame_bytes,
                max_queue=16,
                write_limit=32 * 1024,
                compression=None,
                ping_interval=s.ping_interval_s,
                ping_timeout=s.ping_timeout_s,
                open_timeout=s.auth_timeout_s,
                server_header="grizz-server",
            )
        except OSError as exc:  # port taken, no such address: retrying won't help
            sweep.cancel()
            await gateway.hub.stop()
            await gateway.streams.stop()
            await store.close()
            await redis.aclose()
            raise StartupError(
                f"Cannot listen on {s.host}:{s.port}: {_bind_reason(exc)}."
            ) from None
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        log.info("gateway listening", extra={"host": s.host, "port": self.port})
        return self

    async def __aexit__(self, *exc: object) -> None:
        log.info("gateway stopping: closing connections with 1001")
        gateway = self.gateway
        assert gateway is not None
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 15)
        if self._sweep is not None:
            self._sweep.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweep
        await gateway.hub.stop()
        await gateway.streams.stop()
        await gateway.store.close()
        await gateway.redis.aclose()


def _bind_reason(exc: OSError) -> str:
    """'address already in use', 'unknown host (…)', … for a failed bind."""
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror or exc})"
    if exc.errno:
        return os.strerror(exc.errno).lower()
    return str(exc) or type(exc).__name__


async def serve_gateway(settings: ServerSettings) -> None:
    """Run a gateway process until SIGTERM/SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    running = RunningGateway(settings)
    try:
        await running.__aenter__()
    except GrizzError as exc:  # a corrupt store will be corrupt next time too
        fatal = startup_failure(exc)
        if fatal is None or fatal is exc:
            raise
        raise fatal from exc
    try:
        settle_heap()
        await stop.wait()
    finally:
        await running.__aexit__(None, None, None)
