"""Following one reply job from the server's frames, storing it as it arrives.

`ReplyTracker` keeps a job's state (its text, attempt and last `entry`), turns
each reply frame into a `ReplyUpdate` for whoever shows it (`grizz ask`
prints, the app draws), and stores the reply on the device: the text in
progress every `FLUSH_EVERY` seconds as `streaming`, the server's final row
on `done`, and `error` when the job failed for good.

Must not import: textual, websockets.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

from grizz_core import protocol as p
from grizz_core.domain import Status, utc_now
from grizz_tui.store import sync as store
from grizz_tui.store.conversations import writer_identity
from grizz_tui.store.db import Database

FLUSH_EVERY = 0.25
"""Seconds between stores of a reply's text in progress."""

UpdateKind = Literal["text", "restart", "retrying", "tool", "done", "error"]


@dataclass(frozen=True)
class JobRef:
    """Which reply a job writes: from `accepted` (own send) or `job` (another's)."""

    job_id: str
    message_id: str
    reply_id: str
    conversation_id: str

    @classmethod
    def of(cls, frame: p.Accepted | p.Job) -> JobRef:
        return cls(
            frame.job_id, frame.message_id, frame.reply_id, frame.conversation_id
        )


@dataclass(frozen=True)
class ReplyUpdate:
    """What one reply frame changed, for display."""

    kind: UpdateKind
    text: str = ""
    """`text`: the fragment; `retrying`/`error`: the reason; `tool`: the summary."""
    dropped: str = ""
    """`restart` (or a `text` that begins a new attempt): the text thrown away."""
    name: str = ""
    """`tool`: the tool's name."""
    message: dict[str, Any] = field(default_factory=dict)
    """`done`: the stored reply (the final word)."""


@dataclass
class ReplyTracker:
    """One job's reply as the frames tell it; see the module docstring."""

    db: Database
    job: JobRef
    text: str = ""
    attempt: int = 0
    last_entry: str = "0"
    flushed: float = 0.0

    def apply(self, frame: p.Frame) -> ReplyUpdate | None:
        """Take one frame of this job; None when it changes nothing shown."""
        entry = getattr(frame, "entry", "")
        if entry:
            self.last_entry = entry
        if isinstance(frame, p.Chunk):
            new = frame.attempt > self.attempt
            dropped = self.restart(frame.attempt) if new else ""
            self.text += frame.text
            self.store(Status.STREAMING)
            return ReplyUpdate("text", frame.text, dropped=dropped)
        if isinstance(frame, p.Restart):
            return ReplyUpdate("restart", dropped=self.restart(frame.attempt))
        if isinstance(frame, p.Retrying):
            return ReplyUpdate("retrying", frame.reason)
        if isinstance(frame, p.Tool):
            return ReplyUpdate("tool", frame.summary, name=frame.name)
        if isinstance(frame, p.Done):
            final = frame.message
            store.apply_rows(
                self.db, [{"entity": "messages", "id": final["id"], "data": final}]
            )
            return ReplyUpdate("done", message=frame.message)
        if isinstance(frame, p.Error):
            self.store(Status.ERROR, force=True)
            return ReplyUpdate("error", frame.message)
        return None

    def restart(self, attempt: int) -> str:
        """A new attempt starts from nothing; returns the text dropped."""
        dropped, self.text, self.attempt = self.text, "", attempt
        return dropped

    def store(self, status: Status, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.flushed < FLUSH_EVERY:
            return
        self.flushed = now
        store.apply_rows(self.db, [self.row(status)])

    def row(self, status: Status) -> dict[str, Any]:
        """The reply as a change (`apply_rows` shape) with the text so far."""
        job, stamp = self.job, utc_now()
        data = {
            "id": job.reply_id,
            "conversation_id": job.conversation_id,
            "role": "assistant",
            "content": self.text,
            "status": str(status),
            "model": "",
            "metadata": {
                "reply_to": job.message_id,
                "job_id": job.job_id,
                **writer_identity(),
            },
            "created_at": stamp,
            "updated_at": stamp,
            "deleted": False,
        }
        return {"entity": "messages", "id": job.reply_id, "data": data}
