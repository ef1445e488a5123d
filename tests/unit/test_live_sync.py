"""The pieces of server mode that need no server: a reply told by its frames
(`ReplyTracker`) and the connection state the status bar shows (`LinkState`)."""

from __future__ import annotations

import uuid

from grizz_core import protocol as p
from grizz_core.domain import Status, day_conversation_id
from grizz_tui.store import conversations as conv
from grizz_tui.store.db import Database
from grizz_tui.sync.live import LinkState
from grizz_tui.sync.reply import JobRef, ReplyTracker


def _job(db: Database) -> JobRef:
    conversation = conv.ensure_conversation(db, "2026-12-04", "UTC")
    assert conversation.id == day_conversation_id("2026-12-04")
    return JobRef(
        str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4()), conversation.id
    )


def _stored(db: Database, reply_id: str) -> tuple[str, str]:
    row = next(
        iter(db.query("SELECT content, status FROM messages WHERE id = ?", [reply_id]))
    )
    return row["content"], row["status"]


class TestReplyTracker:
    def test_a_restart_drops_the_partial_text(self, db: Database) -> None:
        job = _job(db)
        tracker = ReplyTracker(db, job)
        first = tracker.apply(
            p.Chunk(job_id=job.job_id, attempt=1, entry="1-0", text="Hel")
        )
        assert first is not None and (first.kind, first.text) == ("text", "Hel")
        restart = tracker.apply(p.Restart(job_id=job.job_id, attempt=2, entry="2-0"))
        assert restart is not None and (restart.kind, restart.dropped) == (
            "restart",
            "Hel",
        )
        tracker.apply(p.Chunk(job_id=job.job_id, attempt=2, entry="3-0", text="Hi!"))
        assert (tracker.text, tracker.last_entry) == ("Hi!", "3-0")

    def test_a_chunk_of_a_new_attempt_starts_over_too(self, db: Database) -> None:
        job = _job(db)
        tracker = ReplyTracker(db, job)
        tracker.apply(p.Chunk(job_id=job.job_id, attempt=1, entry="1-0", text="old"))
        update = tracker.apply(
            p.Chunk(job_id=job.job_id, attempt=2, entry="2-0", text="new")
        )
        assert update is not None and (update.text, update.dropped) == ("new", "old")
        assert tracker.text == "new"

    def test_done_stores_the_servers_row(self, db: Database) -> None:
        job = _job(db)
        tracker = ReplyTracker(db, job)
        tracker.apply(p.Chunk(job_id=job.job_id, attempt=1, entry="1-0", text="Hi"))
        assert _stored(db, job.reply_id) == ("Hi", "streaming")
        final = tracker.row(Status.COMPLETE)
        final["data"]["content"] = "Hi there"
        update = tracker.apply(
            p.Done(job_id=job.job_id, attempt=1, entry="2-0", message=final["data"])
        )
        assert update is not None and update.kind == "done"
        assert _stored(db, job.reply_id) == ("Hi there", "complete")

    def test_an_error_is_stored_as_failed(self, db: Database) -> None:
        job = _job(db)
        tracker = ReplyTracker(db, job)
        update = tracker.apply(
            p.Error(
                code=p.JOB_FAILED, message="no luck", job_id=job.job_id, entry="1-0"
            )
        )
        assert update is not None and (update.kind, update.text) == ("error", "no luck")
        assert _stored(db, job.reply_id) == ("", "error")


class TestLinkState:
    def test_what_the_status_bar_says(self) -> None:
        assert LinkState(connected=True, pending=2).describe() == "connected"
        assert LinkState(retry_at=104.2).describe(now=100.0) == "reconnecting in 5 s"
        assert (
            LinkState(retry_at=101.0, pending=1).describe(now=100.0)
            == "offline, 1 pending · reconnecting in 1 s"
        )
        assert LinkState(pending=3).describe() == "offline, 3 pending"
        assert LinkState().describe() == "connecting…"
        assert "grizz login" in LinkState(refused="no").describe()
