"""One WebSocket connection from this device to grizz-server.

`SyncClient` authenticates with the `Authorization: Bearer` header, waits for
`welcome`, answers requests by `ref` (`request(Pull(...), Changes)`), and
hands every other frame (`changed`, `job`, reply frames) to its listeners, so
one connection can serve the CLI now and the app later (`add_listener`). A
listener gets `None` when the connection is lost. While open it sends a `ping`
frame well within the server's idle timeout. `run` keeps a connection up,
reconnecting with exponential backoff and jitter (1 s → 30 s).

TLS: `wss://` verifies against the system CA store or `sync.ca_file`. The
token never goes over plain `ws://` to a host other than this machine unless
`sync.insecure` is set.

Must not import: textual, the store, the companion.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import itertools
import logging
import random
import ssl
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from grizz_core import protocol as p
from grizz_core.errors import (
    AuthError,
    ConfigError,
    GrizzError,
    ProtocolError,
    UsageError,
)

log = logging.getLogger(__name__)

MAX_FRAME = 16 * 1024 * 1024
"""Largest frame accepted from the server (its pages fit `max_frame_bytes`)."""
CONNECT_TIMEOUT = 10.0
BACKOFF_FIRST = 1.0
BACKOFF_CAP = 30.0

Listener = Callable[[p.Frame | None], None]
F = TypeVar("F", bound=p.Frame)


class ServerUnreachable(GrizzError):
    """The server could not be reached or the connection was lost (exit 1)."""


class TokenRefused(AuthError):
    """The server refused the device token (exit 3)."""


class ServerRefused(GrizzError):
    """The server answered a request with an `error` frame."""

    def __init__(self, frame: p.Error) -> None:
        super().__init__(f"The server refused: {frame.message}")
        self.frame = frame


def normalise_url(url: str) -> str:
    """`ws://`/`wss://` as given; `http(s)://` mapped to `ws(s)://`.

    Raises:
        UsageError: anything else, or no host.
    """
    text = url.strip()
    parts = urlsplit(text)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss") or not parts.hostname:
        raise UsageError(
            f"'{url}' is not a server URL; use wss://HOST, ws://HOST:PORT or https://."
        )
    return parts._replace(scheme=scheme).geturl()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_transport(url: str, *, insecure: bool) -> None:
    """Refuse to send a token in clear text over the network.

    Raises:
        ConfigError: plain `ws://` to a non-loopback host without `sync.insecure`.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "ws" and not is_loopback(host) and not insecure:
        raise ConfigError(
            f"Refusing to send the device token unencrypted to {host}: use wss://, "
            "or `grizz config set sync.insecure true` on a network you trust."
        )


def tls_context(url: str, ca_file: str) -> ssl.SSLContext | None:
    if urlsplit(url).scheme != "wss":
        return None
    try:
        return ssl.create_default_context(cafile=ca_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"Cannot use sync.ca_file {ca_file}: {exc}") from None


def backoff_delays(
    first: float = BACKOFF_FIRST, cap: float = BACKOFF_CAP
) -> Iterator[float]:
    """Reconnect delays: doubling from `first` up to `cap`, each with jitter.

    The jitter (a delay drawn between half and all of the step) spreads the
    reconnects of many devices after a server restart.
    """
    for n in itertools.count():
        step = min(cap, first * 2**n)
        yield random.uniform(step / 2, step)


class SyncClient:
    """A device's connection to the server; see the module docstring."""

    def __init__(
        self, url: str, token: str, *, ca_file: str = "", insecure: bool = False
    ) -> None:
        self.url = normalise_url(url)
        check_transport(self.url, insecure=insecure)
        self.token = token
        self.ssl = tls_context(self.url, ca_file)
        self.welcome: p.Welcome | None = None
        self.listeners: list[Listener] = []
        self._ws: ClientConnection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._waiting: dict[str, asyncio.Future[p.Frame]] = {}
        self._refs = itertools.count(1)
        self.closed = asyncio.Event()

    def add_listener(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with contextlib.suppress(ValueError):
            self.listeners.remove(listener)

    async def open(self, timeout: float = CONNECT_TIMEOUT) -> p.Welcome:
        """Connect and authenticate once.

        Raises:
            TokenRefused: the server refused the token.
            ServerUnreachable: no connection, TLS failure, or no `welcome`.
        """
        where = urlsplit(self.url).netloc
        try:
            async with asyncio.timeout(timeout):
                ws = await connect(
                    self.url,
                    additional_headers={"Authorization": f"Bearer {self.token}"},
                    ssl=self.ssl,
                    open_timeout=timeout,
                    max_size=MAX_FRAME,
                    close_timeout=2,
                    proxy=None,
                )
                raw = await ws.recv()
        except InvalidStatus as exc:
            if exc.response.status_code == 401:
                raise TokenRefused(
                    f"The server at {where} refused the device token; "
                    "run `grizz login` with a valid one."
                ) from None
            raise ServerUnreachable(
                f"The server at {where} answered HTTP {exc.response.status_code}."
            ) from None
        except ssl.SSLError as exc:
            raise ServerUnreachable(
                f"TLS with {where} failed ({exc.reason or exc}); "
                "check the certificate or sync.ca_file."
            ) from None
        except (OSError, TimeoutError, WebSocketException) as exc:
            reason = str(exc) or type(exc).__name__
            raise ServerUnreachable(
                f"The server at {where} is unreachable ({reason})."
            ) from None
        frame = _parse(raw)
        if not isinstance(frame, p.Welcome):
            await ws.close()
            if isinstance(frame, p.Error) and frame.code == p.UNAUTHORIZED:
                raise TokenRefused(f"The server at {where} refused the device token.")
            raise ServerUnreachable(f"The server at {where} did not say welcome.")
        self._ws, self.welcome = ws, frame
        self.closed.clear()
        self._tasks = [
            asyncio.create_task(self._read(ws)),
            asyncio.create_task(self._heartbeat(ws, frame)),
        ]
        return frame

    async def send(self, frame: p.Frame) -> None:
        if self._ws is None:
            raise ServerUnreachable("Not connected to the server.")
        try:
            await self._ws.send(p.dump_frame(frame))
        except ConnectionClosed:
            raise ServerUnreachable("The connection to the server was lost.") from None

    async def request(self, frame: p.Frame, answer: type[F], timeout: float = 60) -> F:
        """Send `frame` with a fresh `ref`; return the answer with that `ref`.

        Raises:
            ServerRefused: the answer was an `error` frame.
            ServerUnreachable: the connection was lost or no answer came.
        """
        waiting = await self.submit(frame)
        return await self.answer(waiting, answer, timeout)

    async def submit(self, frame: p.Frame) -> tuple[str, asyncio.Future[p.Frame]]:
        """Send `frame` with a fresh `ref` now; collect its answer with `answer`.

        Lets a caller keep a request in flight while it works on the last
        answer (the pull of the next page while a page is applied).
        """
        ref = f"r{next(self._refs)}"
        future: asyncio.Future[p.Frame] = asyncio.get_running_loop().create_future()
        self._waiting[ref] = future
        try:
            await self.send(dataclasses.replace(frame, ref=ref))  # type: ignore[call-arg]
        except BaseException:
            self._waiting.pop(ref, None)
            raise
        return ref, future

    async def answer(
        self,
        waiting: tuple[str, asyncio.Future[p.Frame]],
        answer: type[F],
        timeout: float = 60,
    ) -> F:
        """The answer to a `submit`ted request (see `request`)."""
        ref, future = waiting
        try:
            async with asyncio.timeout(timeout):
                found = await future
        except TimeoutError:
            raise ServerUnreachable("The server did not answer in time.") from None
        finally:
            self._waiting.pop(ref, None)
        if isinstance(found, p.Error):
            raise ServerRefused(found)
        if not isinstance(found, answer):
            raise ServerUnreachable(f"Unexpected answer '{found.TYPE}'.")
        return found

    async def close(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self._lost()

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected until `stop` is set or the token is refused.

        Reconnects after every loss with `backoff_delays`; a successful
        `welcome` starts the delays over. Listeners see `None` on each loss
        and can watch `welcome` to resume jobs and pull after a reconnect.
        """
        delays = backoff_delays()
        while not stop.is_set():
            try:
                await self.open()
            except ServerUnreachable as exc:
                log.info("sync: %s", exc)
            else:
                delays = backoff_delays()
                await _first(self.closed.wait(), stop.wait())
                await self.close()
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(next(delays)):
                    await stop.wait()
        await self.close()

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                frame = _parse(raw)
                if frame is not None:
                    self._dispatch(frame)
        except ConnectionClosed:
            pass
        finally:
            self._lost()

    def _dispatch(self, frame: p.Frame) -> None:
        ref = getattr(frame, "ref", "")
        future = self._waiting.get(ref) if ref else None
        if future is not None and not future.done():
            future.set_result(frame)
            return
        for listener in list(self.listeners):
            listener(frame)

    def _lost(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(
                    ServerUnreachable("The connection to the server was lost.")
                )
                future.exception()  # a request nobody awaits any more is no error
        for listener in list(self.listeners):
            listener(None)

    async def _heartbeat(self, ws: ClientConnection, welcome: p.Welcome) -> None:
        """A `ping` frame every third of the idle timeout keeps it from firing."""
        idle = welcome.limits.get("idle_timeout_s", 300)
        every = max(1.0, float(idle) / 3 if isinstance(idle, int | float) else 100.0)
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.sleep(every)
                await ws.send(p.dump_frame(p.Ping()))


def _parse(raw: str | bytes) -> p.Frame | None:
    try:
        return p.parse_frame(raw, allowed=p.SERVER_FRAMES)
    except ProtocolError as exc:
        log.warning("sync: ignoring a frame the server sent: %s", exc)
        return None


async def _first(*waits: Any) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
