"""The sync frame handlers: `pull` (changes after a cursor) and `push`.

Both act on the connection's own user only (its `for_user` store view). A
`push` that applied rows tells every device of the user with a `changed`
carrying them (see `announce.py`).

Must not import: the gateway's server, connection or handlers (they build on
this), the core's session or provider, textual.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from grizz_core import protocol as p
from grizz_core.errors import ProtocolError, StoreError, UsageError
from grizz_server.gateway.announce import changed_budget, publish
from grizz_server.gateway.context import GatewayContext
from grizz_server.gateway.device import Device
from grizz_server.store.pull import MAX_SEQ, pulled_bytes

log = logging.getLogger(__name__)


def page_overhead(ref: str) -> int:
    """Bytes of a `changes` frame around its changes, for this `ref`."""
    empty = p.Changes(changes=[], cursor=MAX_SEQ, has_more=False, ref=ref)
    return len(p.dump_frame(empty).encode())


WORST_REF = "\x01" * p.MAX_REF
"""The `ref` that takes the most bytes in JSON (each character as `\\u0001`)."""


async def pull(ctx: GatewayContext, conn: Device, frame: p.Pull) -> None:
    """Send the page of changes after the device's cursor, sized to fit a frame."""
    settings = ctx.settings
    limit = min(frame.limit, settings.max_pull)
    try:
        # a page ends early so the frame stays within the limit a device must
        # accept anyway (`max_frame_bytes`)
        changes, cursor, has_more = await conn.store.pull(
            frame.after,
            limit,
            max_bytes=settings.max_frame_bytes - page_overhead(frame.ref),
        )
    except UsageError as exc:
        raise ProtocolError(str(exc), code=p.BAD_FRAME) from None
    await conn.emit(
        p.Changes(changes=changes, cursor=cursor, has_more=has_more, ref=frame.ref)
    )


async def push(ctx: GatewayContext, conn: Device, frame: p.Push) -> None:
    """Apply a device's changes, answer with their results, tell its devices.

    Raises:
        ProtocolError: `too_large` (too many changes), `bad_change` (text that
            is not Unicode), `internal` (the database failed: nothing applied).
    """
    settings = ctx.settings
    if len(frame.changes) > settings.max_push:
        raise ProtocolError(
            f"A push may carry at most {settings.max_push} changes.", code=p.TOO_LARGE
        )
    try:
        json.dumps(frame.changes, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise ProtocolError(
            "The push holds text that is not valid Unicode (a lone surrogate), "
            "so none of it was applied.",
            code=p.BAD_CHANGE,
        ) from None
    results = _too_big_to_pull(settings.max_frame_bytes, frame.changes)
    kept = [i for i, result in enumerate(results) if result is None]
    try:
        stored = await conn.store.push(
            [frame.changes[i] for i in kept], max_skew_s=settings.max_clock_skew_s
        )
    except StoreError as exc:
        log.warning("a push failed in the database", extra={"error": str(exc)})
        raise ProtocolError(
            "The server's database failed, so nothing of this push was applied; "
            "push it again later.",
            code=p.INTERNAL,
        ) from None
    for index, result in zip(kept, stored, strict=True):
        results[index] = result
    applied = [
        (r["entity"], r["id"])
        for r in results
        if r is not None and r.get("status") == p.APPLIED
    ]
    changes, cursor = await conn.store.changes_of(
        applied, max_bytes=changed_budget(settings.max_frame_bytes)
    )
    await conn.emit(p.Pushed(results=results, cursor=cursor, ref=frame.ref))
    if applied:
        event = {"kind": "changed", "cursor": cursor, "changes": changes}
        await publish(ctx.queue, conn.user_id, event)


def _too_big_to_pull(max_frame: int, changes: list[Any]) -> list[dict[str, Any] | None]:
    """A `rejected` result for each change whose pull would not fit in a frame.

    A device that accepts frames of `max_frame_bytes` must always be able to
    sync, so no row may be stored that one `changes` frame cannot carry.
    """
    budget = max_frame - page_overhead(WORST_REF)
    results: list[dict[str, Any] | None] = []
    for change in changes:
        size = pulled_bytes(change)
        if size is None or size <= budget:
            results.append(None)
            continue
        results.append(
            {
                "id": _str(change, "id"),
                "entity": _str(change, "entity"),
                "status": p.REJECTED,
                "error": f"too large: this change would take {size} bytes in a "
                f"pull, more than fits in one frame ({budget} of the server's "
                f"max_frame_bytes {max_frame})",
            }
        )
    return results


def _str(change: Any, key: str) -> str:
    value = change.get(key) if isinstance(change, dict) else None
    return value if isinstance(value, str) else ""
