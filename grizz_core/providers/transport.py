"""The seam between `OpenAICompatProvider` and its HTTP libraries.

A transport (`httpx_transport`, `aiohttp_transport`) only sends a POST (or a
GET, for the model list) and
sorts its own exceptions into the four `Failure` kinds; status handling,
retries, SSE and JSON parsing and every message live above it, once. These
are the protocols both sides agree on.

Must not import: httpx, aiohttp, the transports or the client (a transport
imports this module, never the client).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, Protocol

Failure = Literal["connect", "timeout", "broken", "other"]
"""What went wrong on the wire: could not connect (retried before the first
token), no answer in time, the connection broke mid-reply, anything else."""


class Response(Protocol):
    """What the provider reads of an HTTP response (an `httpx.Response` as is)."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]:
        """Case-insensitive `.get(name)`."""
        ...

    @property
    def text(self) -> str: ...

    async def aread(self) -> bytes: ...

    def json(self) -> Any:
        """The body as JSON; `ValueError` if it is not."""
        ...

    def aiter_text(self) -> AsyncIterator[str]:
        """The body, decoded, in the pieces it arrives in."""
        ...


class Transport(Protocol):
    """The HTTP layer under `OpenAICompatProvider`."""

    errors: tuple[type[BaseException], ...]
    """What reading the rest of a body may raise (`sse.drain` ignores it)."""

    def post(
        self, url: str, body: dict[str, Any]
    ) -> AbstractAsyncContextManager[Response]:
        """POST `body` as JSON; the response with its body still to read."""
        ...

    def get(self, url: str) -> AbstractAsyncContextManager[Response]:
        """GET `url`; the response with its body still to read."""
        ...

    def classify(self, exc: Exception) -> tuple[Failure, str] | None:
        """(kind, short reason) for this transport's own errors, else None."""
        ...

    async def aclose(self) -> None: ...
