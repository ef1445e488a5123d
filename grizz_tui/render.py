"""Writing a streamed reply to a terminal or a pipe (used by `grizz ask`).

- Pipe, `NO_COLOR`, or `TERM=dumb`: the raw reply, byte for byte, as it arrives.
- Terminal: Markdown rendered with rich. Finished blocks (split at blank lines
  outside code fences) are printed once and stay; only the block still being
  written is redrawn, so long replies never re-render or flicker.

A closed pipe (`grizz ask … | head -1`) silences output; the reply still
completes and is stored.
"""

from __future__ import annotations

import os
import sys
from typing import IO, Any


def wants_markdown(stream: IO[str]) -> bool:
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (ValueError, OSError):
        return False


def wants_line_end(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (ValueError, OSError):
        return False


def stable_split(text: str) -> int:
    """Index up to which `text` is made of finished Markdown blocks."""
    in_fence = False
    cut = 0
    pos = 0
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            in_fence = not in_fence
        pos += len(line)
        if not in_fence and stripped == "" and line.endswith("\n"):
            cut = pos
    return cut


class RawWriter:
    """Writes deltas unchanged; goes quiet if the reader hangs up."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout
        self.broken = False
        self.ends_line = True
        """Whether everything written so far ends with a newline."""

    def feed(self, text: str) -> None:
        if self.broken:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except BrokenPipeError:
            self._silence()
        if text:
            self.ends_line = text.endswith("\n")

    def close(self) -> None:
        """End a finished reply with a newline (a reply rarely brings its own).

        A reply cut off (Ctrl-C, an error: an exception is in flight) stays
        byte for byte in a pipe; a terminal still gets its line ended.
        """
        cut_off = sys.exc_info()[0] is not None
        if not self.ends_line and (not cut_off or wants_line_end(self.stream)):
            self.feed("\n")

    def _silence(self) -> None:
        self.broken = True
        silence_stdout()


class _Tail:
    """The last lines of a Markdown block that fit the terminal.

    Rich's Live region can only erase what is still on the screen: a block taller
    than the terminal left its top in the scrollback and was printed a second
    time when the block (or a Ctrl-C) ended it. Showing only the tail keeps the
    region erasable; the whole block is printed once when it is finished.
    """

    def __init__(self, text: str) -> None:
        self.text = text

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from rich.markdown import Markdown
        from rich.segment import Segment

        lines = console.render_lines(Markdown(self.text), options, pad=False)
        room = max(1, console.height - 1)
        for line in lines[-room:]:
            yield from line
            yield Segment.line()


class MarkdownWriter:
    """Renders streamed Markdown on a terminal with rich."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console(file=stream or sys.stdout, highlight=False)
        self.buffer = ""
        self.live: Any = Live(
            console=self.console,
            auto_refresh=False,
            transient=True,
            vertical_overflow="visible",
        )
        self.live.start()
        self.broken = False

    def feed(self, text: str) -> None:
        if self.broken:
            return
        from rich.markdown import Markdown

        self.buffer += text
        try:
            cut = stable_split(self.buffer)
            if cut:
                done, self.buffer = self.buffer[:cut], self.buffer[cut:]
                self.live.update("", refresh=True)
                self.console.print(Markdown(done))
            self.live.update(_Tail(self.buffer), refresh=True)
        except BrokenPipeError:
            self.broken = True
            silence_stdout()

    def close(self) -> None:
        from rich.markdown import Markdown

        try:
            self.live.update("", refresh=True)
            self.live.stop()
            if self.buffer.strip() and not self.broken:
                self.console.print(Markdown(self.buffer))
        except BrokenPipeError:
            silence_stdout()


def make_writer(stream: IO[str] | None = None) -> RawWriter | MarkdownWriter:
    stream = stream or sys.stdout
    return MarkdownWriter(stream) if wants_markdown(stream) else RawWriter(stream)


def silence_stdout() -> None:
    """Point fd 1 at /dev/null so the interpreter's final flush cannot fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
