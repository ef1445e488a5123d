"""`grizz ask`: one question, one streamed reply, meaningful exit codes.

Prompt: the arguments joined by spaces, and/or stdin when stdin is not a
terminal. With both, the arguments come first (the instruction), then a blank
line, then stdin (the material): `git diff | grizz ask "review this"`. A
terminal stdin is never read, so `grizz ask` never waits on the keyboard.

Exit codes: 0 ok · 1 provider/network/store error · 2 usage (empty prompt,
bad image, oversized or non-UTF-8 input) · 3 missing configuration or rejected
key · 130 interrupted (Ctrl-C; the partial reply is kept, marked interrupted).

Must not import textual (tests/cli/test_imports.py checks it).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from grizz_core.errors import GrizzError, UsageError


@dataclass
class AskOptions:
    words: list[str]
    json_output: bool = False
    stream: bool = True
    images: list[str] = field(default_factory=list)
    ephemeral: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)
    progress: dict[str, Any] = field(default_factory=dict)
    """What `_consume` has seen so far (ids, the text): the JSON of a Ctrl-C."""


def read_prompt(words: list[str], stdin: IO[bytes] | None, max_bytes: int) -> str:
    """Combine argument words and stdin into the prompt (see module docstring).

    Raises:
        UsageError: empty prompt, stdin over `max_bytes`, or stdin not UTF-8.
    """
    parts = [" ".join(words).strip()] if words else []
    if stdin is not None:
        raw = stdin.read(max_bytes + 1)
        if len(raw) > max_bytes:
            raise UsageError(
                f"Input is larger than {max_bytes:,} bytes; shorten it or raise "
                "the limit with `grizz config set max_input_bytes N`."
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UsageError(
                f"Standard input is not UTF-8 text (byte {raw[exc.start]:#04x} at "
                f"offset {exc.start})."
            ) from None
        if text.strip():
            parts.append(text.strip("\n"))
    prompt = "\n\n".join(p for p in parts if p)
    if len(prompt.encode()) > max_bytes:
        raise UsageError(f"The prompt is larger than {max_bytes:,} bytes.")
    if not prompt.strip():
        raise UsageError("No prompt: give it as arguments or on standard input.")
    return prompt


def _stdin_if_piped() -> IO[bytes] | None:
    try:
        return None if sys.stdin is None or sys.stdin.isatty() else sys.stdin.buffer
    except (ValueError, OSError):
        return None


def run(options: AskOptions) -> int:
    """Run `grizz ask`; returns the process exit code."""
    try:
        from grizz_tui.config import load_settings

        settings = load_settings(options.overrides)
        for warning in settings.warnings:
            print(f"grizz: {warning}", file=sys.stderr)
        prompt = read_prompt(options.words, _stdin_if_piped(), settings.max_input_bytes)
        result = asyncio.run(_ask(settings, prompt, options))
    except KeyboardInterrupt:
        print("grizz: interrupted; the partial reply is saved.", file=sys.stderr)
        if options.json_output:
            _print_json(_interrupted(options))
        return 130
    except GrizzError as exc:
        if options.json_output:
            _print_json({"error": str(exc), "exit_code": exc.exit_code})
        else:
            print(f"grizz: {exc}", file=sys.stderr)
        return exc.exit_code
    if options.json_output:
        _print_json(result)
    return 0


async def _ask(settings: Any, prompt: str, options: AskOptions) -> dict[str, Any]:
    if settings.server_url and not options.ephemeral and not options.images:
        from grizz_tui.sync.ask import ask_via_server, server_token

        token = server_token()
        if token is not None:  # logged in: through the server
            writer = None if options.json_output else _writer()
            try:
                return await ask_via_server(
                    settings,
                    prompt,
                    token,
                    writer=writer,
                    consume=lambda events: _consume(events, options, writer),
                    stream=options.stream,
                )
            finally:
                if writer is not None:
                    writer.close()
    return await _ask_directly(settings, prompt, options)


async def _ask_directly(
    settings: Any, prompt: str, options: AskOptions
) -> dict[str, Any]:
    from grizz_core.companion.attachments import load_image
    from grizz_tui.factory import make_provider, make_session

    images = [load_image(path) for path in options.images]
    provider = make_provider(settings)
    try:
        store = _open_store(options.ephemeral)
        session = make_session(settings, store, provider)
        if options.ephemeral:
            session.tools = False
        writer = None if options.json_output else _writer()
        try:
            events = session.send(prompt, attachments=images, stream=options.stream)
            return await _consume(events, options, writer)
        finally:
            if writer is not None:
                writer.close()
    finally:
        await provider.aclose()


def _writer() -> Any:
    from grizz_tui.render import make_writer

    return make_writer(sys.stdout)


def _open_store(ephemeral: bool):  # type: ignore[no-untyped-def]
    from grizz_tui.store.conversations import recover_orphans
    from grizz_tui.store.db import open_database
    from grizz_tui.store.local import LocalChatStore

    if ephemeral:
        return LocalChatStore(open_database(_memory_path()))
    db = open_database(check="daily")  # a damaged file: one line, nothing written
    recover_orphans(db)
    return LocalChatStore(db)


def _memory_path() -> Path:
    """An in-memory database for --ephemeral: no history in, nothing stored."""
    return Path(":memory:")


async def _consume(
    events: AsyncIterator[Any], options: AskOptions, writer: Any
) -> dict[str, Any]:
    """Render session events to `writer`; return `grizz ask`'s JSON result."""
    from grizz_core.companion.session import (
        ReplyFinished,
        ReplyStarted,
        ToolUsed,
        UserMessageStored,
    )
    from grizz_core.providers.base import TextDelta

    result: dict[str, Any] = {}
    seen = options.progress
    seen.setdefault("parts", [])
    async for event in events:
        if isinstance(event, TextDelta):
            seen["parts"].append(event.text)
            if writer is not None:
                writer.feed(event.text)
        elif isinstance(event, UserMessageStored):
            result["user_message_id"] = seen["user_message_id"] = event.message.id
        elif isinstance(event, ReplyStarted):
            seen["message_id"] = event.message_id
            seen["conversation_id"] = event.conversation_id
        elif isinstance(event, ToolUsed):
            result.setdefault("tools", []).append(
                {"name": event.name, "summary": event.summary}
            )
            if writer is not None:
                print(f"🐻 {event.summary}", file=sys.stderr)
        elif isinstance(event, ReplyFinished):
            message = event.message
            result.update(
                reply=message.content,
                conversation_id=None if options.ephemeral else message.conversation_id,
                message_id=None if options.ephemeral else message.id,
                model=event.model,
                usage=event.usage,
                timing={
                    "elapsed_s": round(event.elapsed, 3),
                    "first_token_s": None
                    if event.first_token is None
                    else round(event.first_token, 3),
                },
                finish_reason=event.finish_reason,
                status=str(message.status),
            )
    if options.ephemeral:
        result.pop("user_message_id", None)
    return result


def _interrupted(options: AskOptions) -> dict[str, Any]:
    """`grizz ask --json`'s object after Ctrl-C: the partial reply and its ids."""
    seen = options.progress
    result: dict[str, Any] = {
        "error": "interrupted",
        "status": "interrupted",
        "exit_code": 130,
        "reply": "".join(seen.get("parts", [])),
    }
    if not options.ephemeral:
        for key in ("conversation_id", "message_id", "user_message_id"):
            result[key] = seen.get(key)
    return result


def _print_json(data: dict[str, Any]) -> None:
    try:
        sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        from grizz_tui.render import silence_stdout

        silence_stdout()
