"""Checking and normalising rows that devices push, before they touch the database.

Every pushed change becomes either a normalised row (column → value, ready to
compare with the stored row and to write) or an `Invalid` with one sentence a
client can show. Nothing here raises anything else for bad input, whatever its
shape: wrong types, huge values, NUL characters or lone surrogates (which
PostgreSQL or the UTF-8 encoder would refuse later), naive timestamps.

Must not import: SQLAlchemy, the core, the provider, websockets, redis.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from grizz_core.domain import Role, Status, day_conversation_id

MAX_ID = 64
MAX_CONTENT = 1_000_000
MAX_SHORT = 200
MAX_TITLE = 1_000
MAX_JSON = 64_000
MAX_ATTACHMENTS = 8
MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024

ENTITIES = ("conversations", "messages", "memory")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


class Invalid(Exception):
    """A pushed change that cannot be accepted; `str()` is the reason."""


@dataclass
class Prepared:
    """A validated change, ready to merge with what is stored."""

    index: int
    """Position in the pushed batch."""
    entity: str
    id: str
    row: dict[str, Any]
    """Column values, without `user_id` and `seq`."""
    attachments: list[dict[str, Any]] = field(default_factory=list)


def check_id(value: Any, what: str = "id") -> str:
    if not isinstance(value, str) or not value:
        raise Invalid(f"{what} must be a non-empty string")
    if len(value) > MAX_ID or not _ID.fullmatch(value):
        raise Invalid(f"{what} must be up to {MAX_ID} letters, digits or - _ . :")
    return value


def check_text(
    data: dict[str, Any], key: str, limit: int, default: str | None = None
) -> str:
    value = data.get(key)
    if value is None:  # absent or null: an optional field takes its default
        if default is None:
            raise Invalid(f"{key} is required")
        value = default
    if not isinstance(value, str):
        raise Invalid(f"{key} must be a string")
    if len(value) > limit:
        raise Invalid(f"{key} is longer than {limit} characters")
    if "\x00" in value:
        raise Invalid(f"{key} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise Invalid(f"{key} is not valid Unicode text") from None
    return value


def check_time(data: dict[str, Any], key: str, default: str | None = None) -> str:
    """An aware ISO-8601 timestamp, normalised to UTC with microseconds."""
    value = data.get(key, default)
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        raise Invalid(f"{key} must be an ISO-8601 timestamp")
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise Invalid(f"{key} must be an ISO-8601 timestamp") from None
    if moment.tzinfo is None:
        raise Invalid(f"{key} must include a time zone offset")
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")


def check_flag(data: dict[str, Any], key: str) -> int:
    value = data.get(key, 0)
    if value in (True, False, 0, 1) and not isinstance(value, float):
        return int(value)
    raise Invalid(f"{key} must be true/false or 0/1")


def check_object(data: dict[str, Any], key: str) -> str:
    """A JSON object (or its JSON text) as canonical text."""
    value = data.get(key, {})
    if value is None:
        value = {}
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except (ValueError, RecursionError):
            raise Invalid(f"{key} is not valid JSON") from None
    if not isinstance(value, dict):
        raise Invalid(f"{key} must be a JSON object")
    try:
        text = canonical_json(value)
        text.encode("utf-8")
    except (TypeError, ValueError, RecursionError, UnicodeEncodeError):
        raise Invalid(f"{key} is not a plain JSON object") from None
    if len(text) > MAX_JSON or "\\u0000" in text:
        raise Invalid(f"{key} is too large or contains NUL characters")
    return text


def canonical_json(value: Any) -> str:
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )


def prepare(index: int, change: Any) -> Prepared:
    """Validate one pushed change.

    Raises:
        Invalid: with the reason, for any problem with the change.
    """
    if not isinstance(change, dict):
        raise Invalid("each change must be an object")
    entity = change.get("entity")
    if entity not in ENTITIES:
        raise Invalid("entity must be one of conversations, messages, memory")
    change_id = check_id(change.get("id"))
    data = change.get("data")
    if not isinstance(data, dict):
        raise Invalid("data must be an object")
    if "id" in data and data["id"] != change_id:
        raise Invalid("data.id does not match the change id")
    if entity == "conversations":
        return Prepared(index, entity, change_id, _conversation(change_id, data))
    if entity == "messages":
        row = _message(change_id, data)
        return Prepared(index, entity, change_id, row, _attachments(data))
    return Prepared(index, entity, change_id, _memory(change_id, data))


def _conversation(conv_id: str, data: dict[str, Any]) -> dict[str, Any]:
    day = data.get("day")
    if not isinstance(day, str) or not _DAY.fullmatch(day):
        raise Invalid("day must be YYYY-MM-DD")
    try:
        dt.date.fromisoformat(day)
    except ValueError:
        raise Invalid("day must be a real calendar date") from None
    if day_conversation_id(day) != conv_id:
        raise Invalid(f"a conversation's id must be the id of its day ({day})")
    created = check_time(data, "created_at")
    return {
        "id": conv_id,
        "day": day,
        "tz": check_text(data, "tz", MAX_SHORT, ""),
        "title": check_text(data, "title", MAX_TITLE, ""),
        "created_at": created,
        "updated_at": check_time(data, "updated_at", data.get("created_at")),
        "deleted": check_flag(data, "deleted"),
    }


def _message(message_id: str, data: dict[str, Any]) -> dict[str, Any]:
    role = data.get("role")
    if role not in tuple(Role):
        raise Invalid("role must be user or assistant")
    status = data.get("status", Status.COMPLETE)
    if status not in tuple(Status):
        raise Invalid("status must be streaming, complete, interrupted or error")
    return {
        "id": message_id,
        "conversation_id": check_id(data.get("conversation_id"), "conversation_id"),
        "role": str(role),
        "content": check_text(data, "content", MAX_CONTENT, ""),
        "status": str(status),
        "model": check_text(data, "model", MAX_SHORT, ""),
        "metadata": check_object(data, "metadata"),
        "created_at": check_time(data, "created_at"),
        "updated_at": check_time(data, "updated_at", data.get("created_at")),
        "deleted": check_flag(data, "deleted"),
    }


def _memory(memory_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": memory_id,
        "kind": check_text(data, "kind", MAX_SHORT, "note") or "note",
        "title": check_text(data, "title", MAX_TITLE, ""),
        "content": check_text(data, "content", MAX_CONTENT, ""),
        "properties": check_object(data, "properties"),
        "file": check_text(data, "file", MAX_TITLE, ""),
        "mime": check_text(data, "mime", MAX_SHORT, ""),
        "deleted": check_flag(data, "deleted"),
        "created_at": check_time(data, "created_at"),
        "updated_at": check_time(data, "updated_at", data.get("created_at")),
    }


def _attachments(data: dict[str, Any]) -> list[dict[str, Any]]:
    items = data.get("attachments") or []
    if not isinstance(items, list) or len(items) > MAX_ATTACHMENTS:
        raise Invalid(f"attachments must be a list of at most {MAX_ATTACHMENTS}")
    out: list[dict[str, Any]] = []
    for position, item in enumerate(items):
        if not isinstance(item, dict):
            raise Invalid("each attachment must be an object")
        encoded = item.get("content_b64")
        if (
            not isinstance(encoded, str)
            or len(encoded) > MAX_ATTACHMENT_BYTES * 4 // 3 + 4
        ):
            raise Invalid(
                f"attachment content_b64 must be base64 of at most "
                f"{MAX_ATTACHMENT_BYTES // (1024 * 1024)} MB"
            )
        try:
            content = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise Invalid("attachment content_b64 is not valid base64") from None
        digest = hashlib.sha256(content).hexdigest()
        if item.get("sha256", digest) != digest:
            raise Invalid("attachment sha256 does not match its content")
        if item.get("size", len(content)) != len(content):
            raise Invalid("attachment size does not match its content")
        out.append(
            {
                "id": check_id(item.get("id"), "attachment id"),
                "name": check_text(item, "name", MAX_TITLE, ""),
                "mime": check_text(item, "mime", MAX_SHORT),
                "size": len(content),
                "sha256": digest,
                "content": content,
                "position": position,
            }
        )
    return out
