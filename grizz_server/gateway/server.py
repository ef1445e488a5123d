"""The gateway process: `websockets` server, token auth, /healthz and /metrics.

HTTP and WebSocket share one port: `process_request` answers `GET /healthz`
and `GET /metrics` itself, rejects a bad `Authorization: Bearer` token with
401 before the upgrade, and lets everything else upgrade. A device that
cannot send headers authenticates with a `hello` frame within
`auth_timeout_s` instead (both checks: gateway/auth.py). On SIGTERM the
server stops accepting and closes every connection with 1001; jobs keep
running in the workers and devices resume on reconnect. A port that cannot
be bound raises `StartupError`, so the process exits with `STARTUP_FAILED`
and the launcher stops instead of restarting it. `Gateway` builds the
process's `GatewayContext` and hands it to each `Connection`; nothing below
this module reaches back into it.

Must not import: the core's session or provider, textual.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
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
from websockets.http11 import Request, Response

from grizz_core.errors import GrizzError
from grizz_server import keys
from grizz_server.aio import settle_heap
from grizz_server.gateway import auth, metrics, revocation
from grizz_server.gateway.connection import Connection
from grizz_server.gateway.context import GatewayContext
from grizz_server.gateway.hub import Hub
from grizz_server.gateway.metrics import Metrics
from grizz_server.gateway.streams import JobStreams
from grizz_server.logs import one_line
from grizz_server.queue.admin import QueueAdmin
from grizz_server.queue.admission import JobAdmission
from grizz_server.queue.jobs import as_text, connect_redis
from grizz_server.queue.pipeline import ScriptPipeline
from grizz_server.settings import ServerSettings, StartupError, startup_failure
from grizz_server.store import Principal, ServerStore

log = logging.getLogger(__name__)


class Gateway:
    """One gateway process: its Redis client, its context, HTTP and WebSocket."""

    def __init__(
        self, settings: ServerSettings, redis: Redis, store: ServerStore
    ) -> None:
        self.redis = redis
        self.context = GatewayContext(
            settings=settings,
            store=store,
            queue=JobAdmission(ScriptPipeline(redis), settings),
            streams=JobStreams(redis, settings.block_ms),
            hub=Hub(redis, on_reconnect=self._resync, on_revoked=self.check_tokens),
            metrics=Metrics(),
        )
        """What each connection and its frame handlers work with."""
        self.admin = QueueAdmin(ScriptPipeline(redis), settings)
        """Queue figures and live workers for /metrics (as `check` counts them)."""
        self.connections = 0
        self.token_check_s = revocation.TOKEN_CHECK_S
        """Seconds between the sweeps that re-check every connection's token."""

    async def _resync(self, user_id: str) -> None:
        """After a pub/sub gap: tell the user's devices what they may have missed."""
        ctx = self.context
        await ctx.streams.register_again([user_id])  # Redis may have lost it
        cursor = await ctx.store.for_user(user_id).current_seq()
        for event in await ctx.queue.job_events(user_id):  # replies to watch
            await ctx.hub.broadcast(user_id, {**event, "cursor": cursor, "changes": []})
        await ctx.hub.broadcast(
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
            for group in list(self.context.hub.users.values())
            for listener in list(group)
            if (principal := getattr(listener, "principal", None)) is not None
            and (not token_ref or revocation.matches(principal.token_id, token_ref))
        ]
        if not listeners:
            return
        try:
            live = await self.context.store.live_tokens(
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
            return await self._metrics(connection, request)
        header = request.headers.get("Authorization", "")
        if not header:
            return None  # authenticate with a `hello` frame instead
        principal = await auth.from_header(self.context, connection, header)
        if principal is None:
            return _response(
                connection,
                HTTPStatus.UNAUTHORIZED,
                "Unknown or revoked device token.\n",
                "text/plain",
            )
        connection.grizz_principal = principal  # type: ignore[attr-defined]
        return None

    async def _metrics(
        self, connection: ServerConnection, request: Request
    ) -> Response:
        """The Prometheus page; with `metrics_token` set, only for its bearer."""
        want = self.context.settings.metrics_token
        if want:
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), want.encode()
            ):
                return _response(
                    connection,
                    HTTPStatus.UNAUTHORIZED,
                    "GET /metrics needs Authorization: Bearer <metrics_token>.\n",
                    "text/plain",
                )
        body = await self.context.metrics.render(
            connections=self.connections, admin=self.admin
        )
        return _response(connection, HTTPStatus.OK, body, metrics.CONTENT_TYPE)

    async def _healthz(self, connection: ServerConnection) -> Response:
        problems: list[str] = []
        failing: dict[bytes | str, bytes | str] = {}
        try:
            await self.redis.ping()
            # workers a launcher left stopped: the server still serves
            failing = await self.redis.hgetall(keys.FAILING)
        except (RedisError, OSError):
            problems.append("redis unreachable")
        try:
            await self.context.store.check()
        except GrizzError as exc:
            problems.append(f"store: {exc}")
        status = HTTPStatus.SERVICE_UNAVAILABLE if problems else HTTPStatus.OK
        body = {"ok": not problems, "problems": problems}
        if failing:
            body["failing"] = sorted(as_text(v) for v in failing.values())
        text = json.dumps(body) + "\n"
        return _response(connection, status, text, "application/json")

    # -- WebSocket ------------------------------------------------------------

    async def handler(self, ws: ServerConnection) -> None:
        principal: Principal | None = getattr(ws, "grizz_principal", None)
        if principal is None:
            principal = await auth.from_hello(self.context, ws)
            if principal is None:
                return
        self.connections += 1
        try:
            await Connection(self.context, ws, principal).serve()
        finally:
            self.connections -= 1


def _response(
    connection: ServerConnection,
    status: HTTPStatus,
    body: str | bytes,
    content_type: str,
) -> Response:
    data = body.encode() if isinstance(body, str) else body
    response = connection.respond(status, "")
    response.body = data
    response.headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(data))),
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
        ctx = gateway.context
        await ctx.hub.start()
        await ctx.streams.start()
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
            await ctx.hub.stop()
            await ctx.streams.stop()
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
        ctx = gateway.context
        await ctx.hub.stop()
        await ctx.streams.stop()
        await ctx.store.close()
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
