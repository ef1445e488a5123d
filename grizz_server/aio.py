"""asyncio helpers shared by the gateway and the workers.

Must not import: anything but the standard library.
"""

from __future__ import annotations

import asyncio


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
