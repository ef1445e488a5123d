"""The Grizz wire protocol: JSON text frames between a device and grizz-server.

Both sides import this module: the server's gateway parses what devices send,
the sync client parses what the server sends. `docs/protocol.md` documents
every frame field by field; this module is the executable form of that page.

Every frame is one JSON object in one WebSocket text message, with a `type`
naming the frame. Unknown fields are ignored (so a newer peer can add fields),
missing optional fields take their defaults, and anything else that is wrong
raises `ProtocolError` with a machine-readable `code`, never a bare exception.

Must not import: anything outside the standard library except `grizz_core.errors`.
"""

from __future__ import annotations

import json
import re
import typing
import uuid
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from grizz_core.errors import ProtocolError

PROTOCOL_VERSION = 1
MAX_REF = 64
MAX_ID = 64
ENTRY_RE = re.compile(r"^(0|[0-9]{1,20}-[0-9]{1,20})$")
"""A per-job stream entry id (`<ms>-<seq>`), or `0` for "from the start"."""

# Error codes (the `code` of an `error` frame). docs/protocol.md explains each.
BAD_JSON = "bad_json"
BAD_FRAME = "bad_frame"
UNKNOWN_TYPE = "unknown_type"
TOO_LARGE = "too_large"
TOO_LONG = "too_long"
UNAUTHORIZED = "unauthorized"
RATE_LIMITED = "rate_limited"
TOO_MANY_JOBS = "too_many_jobs"
BUSY = "busy"
NOT_FOUND = "not_found"
CONFLICT = "conflict"
BAD_CHANGE = "bad_change"
JOB_FAILED = "job_failed"
UNAVAILABLE = "unavailable"
INTERNAL = "internal"
UNSUPPORTED_PROTOCOL = "unsupported_protocol"
ERROR_CODES = frozenset(
    {
        BAD_JSON,
        BAD_FRAME,
        UNKNOWN_TYPE,
        TOO_LARGE,
        TOO_LONG,
        UNAUTHORIZED,
        RATE_LIMITED,
        TOO_MANY_JOBS,
        BUSY,
        NOT_FOUND,
        CONFLICT,
        BAD_CHANGE,
        JOB_FAILED,
        UNAVAILABLE,
        INTERNAL,
        UNSUPPORTED_PROTOCOL,
    }
)

# The `status` of each result in a `pushed` frame.
APPLIED = "applied"
UNCHANGED = "unchanged"
SUPERSEDED = "superseded"
"""The change lost to a newer edit (last-writer-wins); the result carries the
winning row's `updated_at`."""
REJECTED = "rejected"
PUSH_STATUSES = (APPLIED, UNCHANGED, SUPERSEDED, REJECTED)


@dataclass(frozen=True)
class Frame:
    """Base of every frame; `TYPE` is the value of the `type` field."""

    TYPE: ClassVar[str] = ""
    CHECKS: ClassVar[dict[str, str]] = {}
    """Field name → extra check: `uuid`, `entry`, `ref`, `id`, `nonneg`, `positive`."""


# -- device → server ----------------------------------------------------------


@dataclass(frozen=True)
class Hello(Frame):
    """Optional first frame: authenticates when no `Authorization` header was sent."""

    TYPE: ClassVar[str] = "hello"
    CHECKS: ClassVar[dict[str, str]] = {"device": "id"}
    token: str = ""
    device: str = ""
    protocol: int = PROTOCOL_VERSION


@dataclass(frozen=True)
class Send(Frame):
    """A user message for today's (or `day`'s) conversation; Grizz replies."""

    TYPE: ClassVar[str] = "send"
    CHECKS: ClassVar[dict[str, str]] = {"ref": "ref", "message_id": "uuid", "tz": "id"}
    text: str
    ref: str = ""
    message_id: str = ""
    day: str = ""
    tz: str = ""


@dataclass(frozen=True)
class Resume(Frame):
    """Follow a job's reply again, from just after entry `after`."""

    TYPE: ClassVar[str] = "resume"
    CHECKS: ClassVar[dict[str, str]] = {
        "ref": "ref",
        "job_id": "uuid",
        "after": "entry",
    }
    job_id: str
    after: str = "0"
    ref: str = ""


@dataclass(frozen=True)
class Push(Frame):
    """Upload local changes (idempotent upserts by id)."""

    TYPE: ClassVar[str] = "push"
    CHECKS: ClassVar[dict[str, str]] = {"ref": "ref"}
    changes: list[Any]
    ref: str = ""


@dataclass(frozen=True)
class Pull(Frame):
    """Ask for the changes after cursor `after`, at most `limit` of them."""

    TYPE: ClassVar[str] = "pull"
    CHECKS: ClassVar[dict[str, str]] = {
        "ref": "ref",
        "after": "nonneg",
        "limit": "positive",
    }
    after: int = 0
    limit: int = 100
    ref: str = ""


@dataclass(frozen=True)
class Ping(Frame):
    TYPE: ClassVar[str] = "ping"
    CHECKS: ClassVar[dict[str, str]] = {"ref": "ref"}
    ref: str = ""


# -- server → device ----------------------------------------------------------


@dataclass(frozen=True)
class Welcome(Frame):
    """Authentication succeeded."""

    TYPE: ClassVar[str] = "welcome"
    user: str
    device: str = ""
    cursor: int = 0
    limits: dict[str, Any] = field(default_factory=dict)
    protocol: int = PROTOCOL_VERSION
    active_jobs: list[Any] = field(default_factory=list)
    """Ids of this user's replies still in progress (resume them to watch)."""


@dataclass(frozen=True)
class Accepted(Frame):
    """A `send` was stored and its reply job queued (or already existed)."""

    TYPE: ClassVar[str] = "accepted"
    message_id: str
    job_id: str
    reply_id: str
    conversation_id: str
    ref: str = ""
    duplicate: bool = False
    message: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Job(Frame):
    """A reply started for the user (from any device); chunks follow."""

    TYPE: ClassVar[str] = "job"
    job_id: str
    message_id: str
    reply_id: str
    conversation_id: str


@dataclass(frozen=True)
class Chunk(Frame):
    """A piece of reply text from attempt `attempt` of job `job_id`."""

    TYPE: ClassVar[str] = "chunk"
    job_id: str
    attempt: int
    entry: str
    text: str


@dataclass(frozen=True)
class Restart(Frame):
    """Attempt `attempt` starts over: drop the text of every earlier attempt."""

    TYPE: ClassVar[str] = "restart"
    job_id: str
    attempt: int
    entry: str


@dataclass(frozen=True)
class Retrying(Frame):
    """The attempt failed; another one starts in about `delay_ms`."""

    TYPE: ClassVar[str] = "retrying"
    job_id: str
    attempt: int
    entry: str
    delay_ms: int = 0
    reason: str = ""


@dataclass(frozen=True)
class Tool(Frame):
    """Grizz used a memory tool while replying."""

    TYPE: ClassVar[str] = "tool"
    job_id: str
    attempt: int
    entry: str
    name: str
    summary: str = ""


@dataclass(frozen=True)
class Done(Frame):
    """The reply is complete and stored; `message` is the stored row."""

    TYPE: ClassVar[str] = "done"
    job_id: str
    attempt: int
    entry: str
    message: dict[str, Any]


@dataclass(frozen=True)
class Error(Frame):
    """Something failed; `code` is one of `ERROR_CODES`."""

    TYPE: ClassVar[str] = "error"
    code: str
    message: str
    ref: str = ""
    job_id: str = ""
    entry: str = ""
    retry_after: float = 0.0


@dataclass(frozen=True)
class Pushed(Frame):
    TYPE: ClassVar[str] = "pushed"
    results: list[Any]
    cursor: int
    ref: str = ""


@dataclass(frozen=True)
class Changes(Frame):
    """Answer to `pull`: changes in cursor order; ask again while `has_more`."""

    TYPE: ClassVar[str] = "changes"
    changes: list[Any]
    cursor: int
    has_more: bool = False
    ref: str = ""


@dataclass(frozen=True)
class Changed(Frame):
    """Live: data of this user changed (on any device or by Grizz)."""

    TYPE: ClassVar[str] = "changed"
    cursor: int
    changes: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class Pong(Frame):
    TYPE: ClassVar[str] = "pong"
    ref: str = ""


CLIENT_FRAMES: tuple[type[Frame], ...] = (Hello, Send, Resume, Push, Pull, Ping)
SERVER_FRAMES: tuple[type[Frame], ...] = (
    Welcome,
    Accepted,
    Job,
    Chunk,
    Restart,
    Retrying,
    Tool,
    Done,
    Error,
    Pushed,
    Changes,
    Changed,
    Pong,
)
FRAME_TYPES: dict[str, type[Frame]] = {
    f.TYPE: f for f in (*CLIENT_FRAMES, *SERVER_FRAMES)
}
_HINTS: dict[type[Frame], dict[str, Any]] = {}


def parse_frame(
    raw: str | bytes, *, allowed: tuple[type[Frame], ...] | None = None
) -> Frame:
    """Decode one frame; `allowed` limits which types are accepted.

    Raises:
        ProtocolError: not JSON (`bad_json`), not an object or a field of the
            wrong type (`bad_frame`), an unknown or disallowed `type`
            (`unknown_type`).
    """
    if isinstance(raw, bytes | bytearray | memoryview):
        raise ProtocolError("Frames must be JSON text, not binary.", code=BAD_FRAME)
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise ProtocolError("Frame is not valid JSON.", code=BAD_JSON) from None
    if not isinstance(data, dict):
        raise ProtocolError("Frame must be a JSON object.", code=BAD_FRAME)
    kind = data.get("type")
    cls = FRAME_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None or (allowed is not None and cls not in allowed):
        shown = kind if isinstance(kind, str) and len(kind) <= 32 else "?"
        raise ProtocolError(f"Unknown frame type '{shown}'.", code=UNKNOWN_TYPE)
    return _build(cls, data)


def _build(cls: type[Frame], data: dict[str, Any]) -> Frame:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for spec in fields(cls):
        if spec.name not in data:
            if _required(spec):
                raise ProtocolError(
                    f"'{cls.TYPE}' frame needs field '{spec.name}'.", code=BAD_FRAME
                )
            continue
        value = _typed(cls, spec.name, hints[spec.name], data[spec.name])
        _check(cls, spec.name, value)
        values[spec.name] = value
    return cls(**values)


def _required(spec: Any) -> bool:
    from dataclasses import MISSING

    return spec.default is MISSING and spec.default_factory is MISSING


def _typed(cls: type[Frame], name: str, hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint) or hint
    if origin is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = isinstance(value, origin) and not (origin is int and isinstance(value, bool))
    if not ok:
        kind = {
            str: "a string",
            int: "an integer",
            float: "a number",
            bool: "true or false",
            list: "a list",
            dict: "an object",
        }.get(origin, "valid")
        raise ProtocolError(
            f"Field '{name}' of '{cls.TYPE}' must be {kind}.", code=BAD_FRAME
        )
    if origin is str and not _utf8(value):
        raise ProtocolError(
            f"Field '{name}' of '{cls.TYPE}' must be valid Unicode text.",
            code=BAD_FRAME,
        )
    return value


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _check(cls: type[Frame], name: str, value: Any) -> None:
    check = cls.CHECKS.get(name)
    problem = ""
    if check == "uuid" and value:
        problem = "" if _is_uuid(value) else "a UUID"
    elif check == "entry" and not ENTRY_RE.match(value):
        problem = "a stream entry id like '1700000000000-0'"
    elif check == "ref" and len(value) > MAX_REF:
        problem = f"at most {MAX_REF} characters"
    elif check == "id" and (len(value) > MAX_ID or not value.isprintable()):
        problem = f"at most {MAX_ID} printable characters"
    elif check == "nonneg" and value < 0:
        problem = "zero or more"
    elif check == "positive" and value < 1:
        problem = "at least 1"
    if problem:
        raise ProtocolError(
            f"Field '{name}' of '{cls.TYPE}' must be {problem}.", code=BAD_FRAME
        )


def _is_uuid(value: str) -> bool:
    if len(value) != 36:
        return False
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def dump_frame(frame: Frame) -> str:
    """Encode a frame as compact JSON with `type` first.

    Fields are read directly: `dataclasses.asdict` deep-copies every nested
    dict and list (a message, a page of changes), which made encoding the
    largest CPU item of a busy gateway.
    """
    cls = type(frame)
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(frame))
    data = {"type": frame.TYPE}
    for name in names:
        data[name] = getattr(frame, name)
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def error_frame(error: ProtocolError, *, ref: str = "", job_id: str = "") -> Error:
    """The `error` frame that answers a `ProtocolError`."""
    return Error(code=error.code, message=error.message, ref=ref, job_id=job_id)


def ref_of(raw: str | bytes) -> str:
    """Best-effort `ref` of a frame that failed to parse (to label the error)."""
    try:
        data = json.loads(raw)
    except (ValueError, TypeError, RecursionError):
        return ""
    ref = data.get("ref") if isinstance(data, dict) else None
    if isinstance(ref, str) and len(ref) <= MAX_REF and _utf8(ref):
        return ref
    return ""
