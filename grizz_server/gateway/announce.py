"""Live events for a user's devices (`publish`), and the rows a reply writes
besides itself, announced when the reply ends.

A reply's worker writes the reply row, which the `changed` that comes with
`done` carries. Through Grizz's memory tools (`remember`, `forget`) it also
writes notes, and a reply that fails leaves its row with status `error`; no
event of their own comes with those. So a connection that follows a job notes
the user's cursor when the job began (for its own sends and resumes, the
latest cursor it told the device: a lower bound that costs no database read)
and, when the job ends having used a writing tool or failed, reads the rows
changed since then and sends them in one `changed` (no rows, and the
current cursor, when they would not fit in a frame: the device pulls).

Must not import: the gateway's server, connection, handlers or sync (they
build on this), the core's session or provider, textual.
"""

from __future__ import annotations

import logging
from typing import Any

from redis.exceptions import RedisError

from grizz_core import protocol as p
from grizz_server.queue.admission import JobAdmission
from grizz_server.store import UserStore
from grizz_server.store.pull import MAX_SEQ

log = logging.getLogger(__name__)
WRITING_TOOLS = frozenset({b"remember", b"forget"})
"""The memory tools whose use writes a note."""
MEMORY = 256
"""How many jobs' start cursors a connection keeps (the oldest go first)."""


def changed_budget(max_frame: int) -> int:
    """Bytes the changes of a `changed` frame may take within `max_frame`."""
    empty = p.Changed(cursor=MAX_SEQ, changes=[])
    return max_frame - len(p.dump_frame(empty).encode())


class JobRows:
    """One connection's followed jobs: where each began, which wrote rows."""

    def __init__(self) -> None:
        self.since: dict[str, int] = {}
        """Job id → the user's cursor when the job began (as this device saw it)."""
        self.wrote: set[str] = set()
        """Jobs that used a writing tool."""

    def began(self, job_id: str, cursor: int) -> None:
        """Job `job_id` began (or was resumed) at the user's cursor `cursor`."""
        self.since.setdefault(job_id, cursor)
        if len(self.since) > MEMORY:
            oldest = next(iter(self.since))
            del self.since[oldest]
            self.wrote.discard(oldest)

    def ended(self, job_id: str, fields: dict[bytes, bytes]) -> int | None:
        """Note one entry of the job; at its end, the cursor to announce after.

        Returns:
            The job's start cursor when this entry ended a job that wrote
            rows of its own (a note, or a failed reply's row), else None.
        """
        kind = fields.get(b"k")
        if kind == b"tool" and fields.get(b"t") in WRITING_TOOLS:
            self.wrote.add(job_id)
        if kind not in (b"done", b"error"):
            return None
        wrote = job_id in self.wrote
        self.wrote.discard(job_id)
        since = self.since.pop(job_id, None)
        return since if wrote or kind == b"error" else None


async def rows_since(
    store: UserStore, after: int, *, max_frame: int, limit: int
) -> p.Changed:
    """A `changed` with the user's rows changed after cursor `after`."""
    changes, cursor, more = await store.pull(
        after, limit, max_bytes=changed_budget(max_frame)
    )
    if more:  # too many for one frame: the cursor tells the device to pull
        return p.Changed(cursor=await store.current_seq(), changes=[])
    return p.Changed(cursor=cursor, changes=changes)


async def publish(queue: JobAdmission, user_id: str, event: dict[str, Any]) -> None:
    """Send `event` to every device of `user_id`, on every gateway.

    Best effort, tried twice: after a Redis restart the first command on a
    pooled connection fails, and a duplicate event is harmless (devices
    apply changes by id and follow a job once). A device that still misses
    one catches up with `pull`.
    """
    for attempt in (1, 2):
        try:
            await queue.announce(user_id, event)
            return
        except (RedisError, OSError) as exc:
            if attempt == 2:
                log.warning("could not publish a live event", extra={"error": str(exc)})
