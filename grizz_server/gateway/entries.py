"""How the entries of a job's output stream become the frames a device sees.

A worker appends `chunk`, `restart`, `tool`, `retry`, `done` and `error`
entries (fields `k`, `a`, `t`, `x`, `c`) to a job's stream; a connection
following the job turns each one into its protocol frame here.

Must not import: the rest of the gateway, the store, the core's session or
provider, textual.
"""

from __future__ import annotations

import json
from typing import Any

from grizz_core import protocol as p


def entry_frame(job_id: str, entry: str, fields: dict[bytes, bytes]) -> p.Frame | None:
    """The device frame for one entry of a job's output stream, if any."""
    kind = fields.get(b"k", b"").decode()
    attempt = int(fields.get(b"a", b"0") or 0)
    text = fields.get(b"t", b"").decode()
    extra = fields.get(b"x", b"").decode()
    if kind == "chunk":
        return p.Chunk(job_id=job_id, attempt=attempt, entry=entry, text=text)
    if kind == "restart":
        return p.Restart(job_id=job_id, attempt=attempt, entry=entry)
    if kind == "tool":
        return p.Tool(
            job_id=job_id, attempt=attempt, entry=entry, name=text, summary=extra
        )
    if kind == "retry":
        return p.Retrying(
            job_id=job_id,
            attempt=attempt,
            entry=entry,
            delay_ms=int(extra or 0),
            reason=text,
        )
    if kind == "done":
        message: dict[str, Any] = json.loads(text)
        return p.Done(job_id=job_id, attempt=attempt, entry=entry, message=message)
    if kind == "error":
        return p.Error(
            code=fields.get(b"c", b"job_failed").decode(),
            message=text,
            job_id=job_id,
            entry=entry,
        )
    return None
