"""One sync round over an open `SyncClient`: push, send pending, pull, apply.

- push: the outbox in batches that fit `welcome.limits` (`max_push` changes,
  `max_frame_bytes` bytes); an entry leaves the outbox once the server applied
  it, found it unchanged, or rejected it (the reason is reported; the row
  stays on this device).
- send: messages stored while the server was away go up with `send` (same
  message id: a re-send is idempotent), so Grizz answers them.
- pull: pages after the stored cursor; each page and its cursor are applied
  in one transaction, so a catch-up cut short resumes at the next page.

Must not import: textual.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from grizz_core import protocol as p
from grizz_tui.store import sync as store
from grizz_tui.store.db import Database
from grizz_tui.sync.client import ServerRefused, SyncClient
from grizz_tui.sync.state import load_state, record_sync

FRAME_OVERHEAD = 256
"""Bytes of a push frame besides its changes (type, ref, brackets)."""
REPLY_WAIT = 120.0
"""How long `grizz sync` waits for the replies to the messages it sends."""


@dataclass
class SyncReport:
    pushed: int = 0
    pulled: int = 0
    sent: int = 0
    rejected: list[str] = field(default_factory=list)
    """One line per change the server refused."""
    cursor: int = 0


@dataclass
class _Batch:
    items: list[store.OutboxItem] = field(default_factory=list)
    size: int = 0


class SyncEngine:
    """Moves data between the local store and the server over `client`."""

    def __init__(
        self,
        db: Database,
        client: SyncClient,
        *,
        on_page: Callable[[int], None] | None = None,
        on_applied: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> None:
        self.db = db
        self.client = client
        self.on_page = on_page
        """Called with the new cursor after each applied page (progress, tests)."""
        self.on_applied = on_applied
        """Called with each pulled page's changes once applied (the app shows them)."""

    def _limit(self, name: str, default: int) -> int:
        welcome = self.client.welcome
        value = welcome.limits.get(name, default) if welcome else default
        return value if isinstance(value, int) and value > 0 else default

    async def run_once(self, *, wait_replies: bool = True) -> SyncReport:
        """Push, send pending messages, pull everything after the cursor."""
        report = SyncReport()
        report.pushed, report.rejected = await self.push()
        report.sent = await self.send_pending(wait_replies=wait_replies)
        report.pulled, report.cursor = await self.pull()
        record_sync(self.db)
        return report

    async def push(self) -> tuple[int, list[str]]:
        """Push the whole outbox; returns (changes pushed, rejection lines)."""
        max_push = self._limit("max_push", 500)
        budget = self._limit("max_frame_bytes", 256 * 1024) - FRAME_OVERHEAD
        pushed, rejected = 0, list[str]()
        after: tuple[int, str] = (-1, "")
        while items := store.read_outbox(self.db, limit=max_push, after=after):
            after = (items[-1].rank, items[-1].id)
            for batch in _batches(items, max_push, budget, rejected):
                results = await self.client.request(
                    p.Push(changes=[i.change for i in batch.items]), p.Pushed
                )
                for item, result in zip(batch.items, results.results, strict=False):
                    if isinstance(result, dict) and result.get("status") == "rejected":
                        rejected.append(
                            f"{item.entity} {item.id}: {result.get('error', '?')}"
                        )
                store.mark_pushed(self.db, batch.items)
                pushed += len(batch.items)
        return pushed, rejected

    async def send_pending(
        self,
        *,
        wait_replies: bool,
        exclude: str = "",
        on_accepted: Callable[[p.Accepted], None] | None = None,
    ) -> int:
        """Send every pending message (but `exclude`) once; maybe wait for replies.

        `on_accepted` sees each `accepted` before any frame of its job is
        handled (the app follows those replies).
        """
        jobs: dict[str, asyncio.Future[None]] = {}
        loop = asyncio.get_running_loop()

        def listen(frame: p.Frame | None) -> None:
            job = getattr(frame, "job_id", "")
            if frame is None:
                for future in jobs.values():
                    if not future.done():
                        future.set_result(None)
            elif (
                isinstance(frame, p.Done | p.Error)
                and job in jobs
                and not jobs[job].done()
            ):
                jobs[job].set_result(None)

        self.client.add_listener(listen)
        sent = 0
        try:
            for pending in store.pending_sends(self.db):
                if pending.message.id == exclude:
                    continue
                try:
                    accepted = await self.client.request(
                        p.Send(
                            text=pending.message.content,
                            message_id=pending.message.id,
                            day=pending.day,
                            tz=_iana(pending.tz),
                        ),
                        p.Accepted,
                    )
                except ServerRefused as exc:
                    if exc.frame.code in (p.CONFLICT, p.TOO_LONG, p.BAD_FRAME):
                        store.clear_pending(self.db, pending.message.id)
                    raise
                store.settle_sent(self.db, accepted.message)
                if on_accepted is not None:
                    on_accepted(accepted)
                jobs.setdefault(accepted.job_id, loop.create_future())
                sent += 1
            if wait_replies and jobs:
                async with asyncio.timeout(REPLY_WAIT):
                    await asyncio.gather(*jobs.values())
        finally:
            self.client.remove_listener(listen)
        return sent

    async def pull(self) -> tuple[int, int]:
        """Pull and apply every page after the stored cursor; (rows, cursor).

        The next page is asked for before the current one is applied (in a
        thread), so the server reads it while this device writes: a new
        device's catch-up costs about the larger of the two, not their sum.
        A page and its cursor are stored together, so a catch-up cut short
        resumes at the first page not applied.
        """
        cursor = load_state(self.db).cursor
        limit = self._limit("max_pull", 500)
        pulled = 0
        waiting = await self.client.submit(p.Pull(after=cursor, limit=limit))
        while True:
            page = await self.client.answer(waiting, p.Changes)
            if page.has_more:
                waiting = await self.client.submit(
                    p.Pull(after=page.cursor, limit=limit)
                )
            await asyncio.to_thread(
                store.apply_changes, self.db, page.changes, page.cursor
            )
            pulled += len(page.changes)
            if self.on_applied is not None and page.changes:
                self.on_applied(page.changes)
            if self.on_page is not None:
                self.on_page(page.cursor)
            if not page.has_more:
                return pulled, page.cursor


def _batches(
    items: list[store.OutboxItem], max_push: int, budget: int, rejected: list[str]
) -> list[_Batch]:
    """Split `items` into pushes within `max_push` changes and `budget` bytes.

    A change too large for any frame cannot be pushed at all: it is reported
    on every round and stays in the outbox (and on this device).
    """
    batches = [_Batch()]
    for item in items:
        size = len(json.dumps(item.change, ensure_ascii=False).encode()) + 1
        if size > budget:
            rejected.append(f"{item.entity} {item.id}: too large to sync")
            continue
        current = batches[-1]
        if current.items and (
            len(current.items) >= max_push or current.size + size > budget
        ):
            current = _Batch()
            batches.append(current)
        current.items.append(item)
        current.size += size
    return [b for b in batches if b.items]


def _iana(tz: str) -> str:
    """The zone to name in `send`: an IANA name, or '' (the server assumes UTC)."""
    return tz if "/" in tz or tz == "UTC" else ""


def outbox_size(db: Database) -> dict[str, Any]:
    """What waits to go up: rows per entity and pending messages."""
    counts = store.outbox_counts(db)
    return {**counts, "pending": len(store.pending_sends(db))}
