"""Server-sent events: a streamed body → its lines → its `data:` payloads.

Shared by both transports: they hand over the body as decoded text in the
pieces it arrives in (`Response.aiter_text`), and the lines are split here,
the way server-sent events define them, not by the HTTP library.

Must not import: httpx, aiohttp, the transports or the client.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from grizz_core.providers.transport import Response


async def sse_payloads(response: Response) -> AsyncIterator[str]:
    """The `data:` payloads of a server-sent-events body, one per event."""
    data: list[str] = []
    # Lines end only at \n, \r\n or \r, as server-sent events define them:
    # httpx's aiter_lines() also splits at U+2028, U+0085 and the like
    # (str.splitlines), which broke a JSON payload carrying one unescaped.
    async for line in lines(response):
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if name == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)


async def drain(
    payloads: AsyncIterator[str], errors: tuple[type[BaseException], ...]
) -> None:
    """Read the (empty) rest of a body after `[DONE]`, ignoring `errors`.

    So the connection goes back to the pool: leaving a body unread makes httpx
    (and aiohttp) close the connection, and the next request pays a new TCP
    (and TLS) handshake. A server that keeps talking after `[DONE]` gets a
    second, then is cut off.
    """
    with contextlib.suppress(*errors):
        async with asyncio.timeout(1.0):
            async for _ in payloads:
                pass


async def lines(response: Response) -> AsyncIterator[str]:
    """The body's lines, without their endings."""
    splitter = LineSplitter()
    async for text in response.aiter_text():
        for line in splitter.feed(text):
            yield line
    for line in splitter.flush():
        yield line


class LineSplitter:
    """Text in pieces → lines, ended by \\n, \\r\\n or \\r (as SSE defines them).

    A piece ending in \\r ends its line at once; a \\n that starts the next
    piece is then the rest of that line ending, not an empty line.
    """

    __slots__ = ("_after_cr", "_rest")

    def __init__(self) -> None:
        self._rest = ""
        self._after_cr = False

    def feed(self, text: str) -> list[str]:
        """The lines `text` completes (with what came before it)."""
        if not text:
            return []
        if self._after_cr:
            self._after_cr = False
            if text[0] == "\n":
                text = text[1:]
        if "\r" in text:
            if text[-1] == "\r":
                self._after_cr = True
                text = text[:-1].replace("\r\n", "\n").replace("\r", "\n") + "\n"
            else:
                text = text.replace("\r\n", "\n").replace("\r", "\n")
        if "\n" not in text:
            self._rest += text
            return []
        split = (self._rest + text).split("\n")
        self._rest = split.pop()
        return split

    def flush(self) -> list[str]:
        """The last line, if the text did not end with a line ending."""
        rest, self._rest = self._rest, ""
        return [rest] if rest else []
