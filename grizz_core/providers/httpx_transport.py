"""The httpx transport of `OpenAICompatProvider`: the devices' (`grizz ask`,
the app), and the default.

Why httpx and not the `openai` SDK: importing the SDK costs ~1.3 s on the
2-core target machine against ~0.24 s for httpx (docs/benchmarks.md). Why
httpx and not aiohttp on the devices: aiohttp costs ~0.1 s more to import
(figures in `aiohttp_transport`). The responses are httpx's own, read through
the `transport.Response` protocol (no adapter on the hot path).

Must not import: the client (`openai_compat`), aiohttp.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Any

from grizz_core.providers.errors import reason
from grizz_core.providers.transport import Failure, Response

# httpx imports its command-line tool (`httpx._main`, which loads rich and
# pygments: ~75 ms) whenever click and rich are installed, as they are here.
# Marking the module absent makes httpx fall back to its stub, as it does
# without those packages. Nothing in Grizz uses the httpx CLI.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

import httpx  # noqa: E402

POOL_SHARD = 8
"""Connections per httpx client at most (see `HttpxTransport.__init__`)."""


class HttpxTransport:
    """httpx, sharded into pools of POOL_SHARD connections when large."""

    errors: tuple[type[BaseException], ...] = (TimeoutError, httpx.HTTPError)

    def __init__(
        self, *, headers: dict[str, str], timeout: float, max_connections: int
    ) -> None:
        # httpcore's pool scans all its connections, twice over, on every
        # request and release (quadratic in 1.0.9): past ~10 connections the
        # scan costs more than the request. A provider sized for many
        # replies at once spreads them over clients of POOL_SHARD connections.
        shards = pool_limits(max_connections)
        # one TLS context for all shards: each costs ~40 ms to create
        tls: dict[str, Any] = (
            {"verify": httpx.create_ssl_context()} if len(shards) > 1 else {}
        )
        self._clients = [
            httpx.AsyncClient(
                headers=headers,
                timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0)),
                limits=limits,
                **tls,
            )
            for limits in shards
        ]
        self._busy = [0] * len(self._clients)

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()

    @contextlib.asynccontextmanager
    async def post(self, url: str, body: dict[str, Any]) -> AsyncIterator[Response]:
        """On the client with the fewest requests in flight."""
        index = min(range(len(self._clients)), key=self._busy.__getitem__)
        self._busy[index] += 1
        try:
            async with self._clients[index].stream("POST", url, json=body) as response:
                yield response
        finally:
            self._busy[index] -= 1

    @contextlib.asynccontextmanager
    async def get(self, url: str) -> AsyncIterator[Response]:
        async with self._clients[0].stream("GET", url) as response:
            yield response

    @staticmethod
    def classify(exc: Exception) -> tuple[Failure, str] | None:
        if isinstance(
            exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout
        ):
            return "connect", reason(exc)
        if isinstance(exc, httpx.TimeoutException):
            return "timeout", reason(exc)
        if isinstance(
            exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError
        ):
            return "broken", reason(exc)
        if isinstance(exc, httpx.HTTPError):
            return "other", reason(exc)
        return None


def pool_limits(max_connections: int) -> list[httpx.Limits]:
    """One `Limits` per client: httpx's defaults, or shards of POOL_SHARD."""
    if max_connections <= 0:
        return [httpx.Limits()]
    shards = -(-max_connections // POOL_SHARD)
    size = -(-max_connections // shards)
    return [httpx.Limits(max_connections=size, max_keepalive_connections=size)] * shards
