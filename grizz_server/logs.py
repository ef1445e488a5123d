"""Structured logging: one JSON object per line, to stderr and a per-process file.

The file rotates at `log_max_bytes` keeping `log_backups` old ones
(`gateway.log.1` …), each readable by the server's user only.

Under systemd (`INVOCATION_ID` or `JOURNAL_STREAM` in the environment, which
the launcher's children inherit) the journal already keeps stderr, so no
second copy goes to disk: the per-process file then receives only the records
that carry a `reason` (why a process stopped), which the launcher reads there.

Call `configure(process_name, settings)` once at process start; modules log
through `logging.getLogger(__name__)` and pass facts as `extra={...}`. Tokens
are never passed to a logger; as a second line of defence `_Redact` blanks
anything that looks like a bearer credential before a record is written.

Must not import: redis, websockets, the store, the core.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import logging.handlers
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

_SECRET = re.compile(r"(?i)(bearer\s+|token[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+")
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


def one_line(exc: BaseException) -> str:
    """An exception as one short line for a log field or a message (never a
    traceback): `Type: first line of its text`, at most 200 characters of it."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def redact(text: str) -> str:
    """`text` with bearer tokens and `token=…` values replaced by `***`."""
    return _SECRET.sub(lambda m: m.group(1) + "***", text)


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "process", "logger", "msg", ...extra}` on one line."""

    def __init__(self, process_name: str) -> None:
        super().__init__()
        self.process_name = process_name

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "process": self.process_name,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = (
                    value
                    if isinstance(value, int | float | bool)
                    else redact(str(value))
                )
        if record.exc_info:
            data["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(data, ensure_ascii=False)


SYSTEMD_ENV = ("INVOCATION_ID", "JOURNAL_STREAM")
"""Set by systemd for a service's processes: stderr goes to the journal."""


def under_systemd(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process runs as (a child of) a systemd service."""
    env = os.environ if environ is None else environ
    return any(env.get(name) for name in SYSTEMD_ENV)


def _has_reason(record: logging.LogRecord) -> bool:
    return bool(getattr(record, "reason", None))


class _PrivateRotatingFile(logging.handlers.RotatingFileHandler):
    """A rotating log file created 0600: logs name users and quote their errors."""

    def _open(self) -> io.TextIOWrapper:
        stream = super()._open()
        os.chmod(self.baseFilename, 0o600)
        return stream


def configure(
    process_name: str,
    log_dir: Path | None,
    *,
    verbose: bool = False,
    max_bytes: int = 0,
    backups: int = 0,
) -> None:
    """Send every `grizz_server` log record to stderr and `log_dir/<name>.log`
    (under systemd, only the records with a `reason` to the file), rotated at
    `max_bytes` (0: never) keeping `backups` old files."""
    formatter = JsonFormatter(process_name)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        log_file = log_dir / f"{process_name}.log"
        file_handler = _PrivateRotatingFile(
            log_file,
            maxBytes=max(0, max_bytes),
            backupCount=max(0, backups),
            encoding="utf-8",
        )
        if under_systemd():
            file_handler.addFilter(_has_reason)
        handlers.append(file_handler)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("websockets", "httpx", "httpcore", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
