"""The aiohttp transport of `OpenAICompatProvider`: the server worker's.

Why a second transport (`openai_compat`): streaming one reply through the
provider costs a third to a quarter of httpx's CPU with aiohttp (figures in
`openai_compat`). Why not everywhere: import time. Measured with
`python -X importtime` on the 2-core development machine (best of 7):
`import httpx` ~50 ms (with its CLI stubbed, as `httpx_transport` does), `import
aiohttp` ~145 ms on its own and ~100 ms more once httpx is loaded. `grizz ask`
pays every import it makes, so the client stays on httpx and this module (and
aiohttp) is imported only by a provider built with `http="aiohttp"`.

It behaves as the httpx transport does: the same User-Agent and key, a JSON
body, no redirects followed, timeouts like `httpx.Timeout(timeout,
connect=min(timeout, 15))` (waiting for a pooled connection up to `timeout`,
the TCP connect up to 15 s, each read up to `timeout`), idle connections kept
5 s, the proxy from HTTP(S)_PROXY / NO_PROXY (read once; not ALL_PROXY or
SOCKS), httpx's trust store (certifi, or SSL_CERT_FILE / SSL_CERT_DIR), and
its errors sorted into the same four kinds.

Must not import: the client (`openai_compat`); httpx only for its trust store.
"""

from __future__ import annotations

import codecs
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from grizz_core.providers.errors import reason
from grizz_core.providers.transport import Failure

# Most specific first: ClientConnectorError is a ClientOSError (a "broken"
# error below) and ConnectionTimeoutError a TimeoutError.
_CONNECT: tuple[type[Exception], ...] = tuple(
    kind
    for kind in (
        aiohttp.ClientConnectorError,
        getattr(aiohttp, "ConnectionTimeoutError", None),  # aiohttp >= 3.10
    )
    if kind is not None
)
# ServerDisconnectedError, ClientOSError, ClientConnectionResetError, "Connection
# closed"; a malformed status line or header (ClientResponseError: httpx's
# RemoteProtocolError) and a body cut off or badly framed (ClientPayloadError).
_BROKEN = (
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
    aiohttp.ClientResponseError,
)


class AiohttpTransport:
    """One `aiohttp.ClientSession`, opened on first use in the running loop."""

    errors: tuple[type[BaseException], ...] = (TimeoutError, aiohttp.ClientError)

    def __init__(
        self,
        *,
        base_url: str,
        headers: dict[str, str],
        timeout: float,
        max_connections: int,
    ) -> None:
        self._headers = headers
        self._limit = max_connections if max_connections > 0 else 100  # httpx's
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            connect=timeout,
            sock_connect=min(timeout, 15.0),
            sock_read=timeout,
        )
        url = URL(base_url)
        # httpx reads the proxy settings once, when its client is made;
        # aiohttp's trust_env would read them (and ~/.netrc) on every request.
        self._proxy: URL | None = None
        self._proxy_auth: aiohttp.BasicAuth | None = None
        with contextlib.suppress(LookupError):
            self._proxy, self._proxy_auth = get_env_proxy_for_url(url)
        self._ssl: Any = True
        if url.scheme == "https":
            import httpx

            self._ssl = httpx.create_ssl_context()
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        """The session; made here, in the loop (made outside one, it warns)."""
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=self._limit,
                keepalive_timeout=5.0,  # httpx's keepalive_expiry (aiohttp's: 15)
                ssl=self._ssl,
            ),
            headers=self._headers,
            timeout=self._timeout,
        )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    @contextlib.asynccontextmanager
    async def post(
        self, url: str, body: dict[str, Any]
    ) -> AsyncIterator[AiohttpResponse]:
        session = self._session or self._open()
        async with session.post(
            url,
            json=body,
            allow_redirects=False,
            proxy=self._proxy,
            proxy_auth=self._proxy_auth,
        ) as response:
            yield AiohttpResponse(response)

    @contextlib.asynccontextmanager
    async def get(self, url: str) -> AsyncIterator[AiohttpResponse]:
        session = self._session or self._open()
        async with session.get(
            url, allow_redirects=False, proxy=self._proxy, proxy_auth=self._proxy_auth
        ) as response:
            yield AiohttpResponse(response)

    @staticmethod
    def classify(exc: Exception) -> tuple[Failure, str] | None:
        if isinstance(exc, _CONNECT):
            return "connect", _connect_reason(exc)
        if isinstance(exc, TimeoutError):  # ServerTimeoutError, SocketTimeoutError
            return "timeout", reason(exc)
        if isinstance(exc, _BROKEN):
            return "broken", _broken_reason(exc)
        if isinstance(exc, aiohttp.NonHttpUrlClientError | aiohttp.InvalidURL):
            return "other", reason(ValueError(f"unsupported URL {exc}"))
        if isinstance(exc, aiohttp.ClientError):
            return "other", reason(exc)
        return None


def _connect_reason(exc: Exception) -> str:
    """The cause without aiohttp's "Cannot connect to host …" wrapping."""
    cause = getattr(exc, "os_error", None)
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, OSError) and str(cause):
        return reason(cause)
    return reason(exc)


def _broken_reason(exc: Exception) -> str:
    """aiohttp's message without the URL and the wrapped exception's repr."""
    if isinstance(exc, aiohttp.ClientResponseError) and exc.message:
        return reason(ValueError(exc.message))
    if isinstance(exc, aiohttp.ClientPayloadError):
        return reason(ValueError(str(exc).partition(": <")[0]))
    return reason(exc)


class AiohttpResponse:
    """An `aiohttp.ClientResponse` as the provider reads a response."""

    __slots__ = ("_body", "_response", "headers", "status_code")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self._body: bytes | None = None
        self.status_code: int = response.status
        self.headers: Mapping[str, str] = response.headers

    async def aread(self) -> bytes:
        if self._body is None:
            self._body = await self._response.read()
        return self._body

    def _read(self) -> bytes:
        if self._body is None:
            raise RuntimeError("read the body with aread() first")
        return self._body

    @property
    def text(self) -> str:
        return self._read().decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self._read())

    async def aiter_text(self) -> AsyncIterator[str]:
        decode = codecs.getincrementaldecoder("utf-8")(errors="replace").decode
        async for chunk in self._response.content.iter_any():
            text = decode(chunk)
            if text:
                yield text
        rest = decode(b"", True)
        if rest:
            yield rest
