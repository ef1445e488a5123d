"""What a device's connection and its frame handlers work with: `GatewayContext`.

One frozen context per gateway process, built by `gateway/server.py` and
handed to every `Connection`, which passes it on to the frame handlers
(`gateway/handlers.py`). They reach the settings, the queue, the store, the
job streams, the hub and the metrics through it, never through the server.

Must not import: the gateway's server, connection or handlers (they build on
this), the core's session or provider, textual.
"""

from __future__ import annotations

from dataclasses import dataclass

from grizz_server.gateway.hub import Hub
from grizz_server.gateway.metrics import Metrics
from grizz_server.gateway.streams import JobStreams
from grizz_server.queue.admission import JobAdmission
from grizz_server.settings import ServerSettings
from grizz_server.store import ServerStore


@dataclass(frozen=True, slots=True)
class GatewayContext:
    """The shared collaborators of one gateway process."""

    settings: ServerSettings
    """Limits and timeouts (`max_message_chars`, `idle_timeout_s`, …)."""
    store: ServerStore
    """The server store; a connection uses its user's `for_user` view."""
    queue: JobAdmission
    """Admission, job ownership and the live events of every gateway."""
    streams: JobStreams
    """The shared reader of job output streams that connections follow."""
    hub: Hub
    """user id → this gateway's connections, fed from Redis pub/sub."""
    metrics: Metrics
    """This process's counters for /metrics."""
