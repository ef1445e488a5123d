"""What the frame handlers see of a device's connection: the `Device` protocol.

`gateway/connection.py` implements it; the handlers (`handlers.py`,
`sync.py`) take it explicitly, so they can be read without the connection.

Must not import: the rest of the gateway, the core's session or provider, textual.
"""

from __future__ import annotations

from typing import Protocol

from grizz_core import protocol as p
from grizz_server.store import UserStore


class Device(Protocol):
    """The connection a frame came in on, as far as the handlers use it."""

    user_id: str
    store: UserStore
    """The store as seen by this device's user."""

    async def emit(self, frame: p.Frame) -> None:
        """Send `frame` to the device (after those already queued)."""
        ...

    def follow(
        self, job_id: str, after: str = "0", *, fresh: bool = False, hold: bool = False
    ) -> None:
        """Stream job `job_id`'s output to the device from after entry `after`."""
        ...

    def unfollow(self, job_id: str) -> None:
        """Stop streaming job `job_id` to the device."""
        ...

    def is_following(self, job_id: str) -> bool:
        """True while job `job_id`'s output streams to the device."""
        ...

    def began(self, job_id: str, cursor: int | None = None) -> None:
        """Job `job_id` began at the user's cursor `cursor` (see announce.py);
        None: at the latest cursor this device was told, a lower bound."""
        ...

    def release(self, job_id: str) -> None:
        """Send the frames of `job_id` held back until its `accepted` was out."""
        ...
