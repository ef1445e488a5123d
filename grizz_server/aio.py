"""asyncio helpers shared by the gateway and the workers.

Must not import: anything but the standard library.
"""

from __future__ import annotations

import asyncio
import gc


def check_cancelled() -> None:
    """Raise `CancelledError` if this task was asked to stop.

    redis-py's asyncio client can swallow a cancellation that lands while a
    blocking command (XREAD BLOCK, XREADGROUP BLOCK) waits for its reply
    (redis/redis-py#2028, #2551; reproduced here with redis 8.1). A task
    looping on such commands would then never stop. Every such loop calls
    this once per turn: `Task.cancelling()` still counts the request.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def settle_heap() -> None:
    """Move everything built at start-up out of the garbage collector's way.

    A gateway or worker holds tens of thousands of long-lived objects (imported
    modules, SQLAlchemy statements, compiled scripts). Each full collection
    walked all of them: measured with `gc.callbacks` at 200 streams
    (`bench/server_latency.py --mode steady --levels 200`), generation-2
    pauses of 27-97 ms stalled a process's event loop, and they were the
    p99 of the added latency. `gc.freeze()` puts the objects alive now in a
    permanent generation that collections skip; call it once, after
    start-up and warm-up, before taking traffic.
    """
    gc.collect()
    gc.freeze()
