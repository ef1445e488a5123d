"""The queue's script calls, batched into one Redis pipeline per event-loop turn.

One `ScriptPipeline` per process, shared by every queue role it uses
(`JobAdmission`, `JobLeases`, `QueueAdmin`): calls made by any of them in
one turn of the loop go to Redis together.

Must not import: websockets, the store, the core.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, ResponseError

from grizz_server.queue import scripts

SCRIPTS = (
    "SUBMIT",
    "CANCEL",
    "ANNOUNCE",
    "BEGIN",
    "APPEND",
    "CHECK",
    "EXTEND",
    "FINISH",
    "FAIL",
    "PROMOTE",
    "RELEASE",
    "REQUEUE",
    "ORPHANS",
)
"""The names of the Lua scripts in `scripts.py` the roles call."""


@dataclass(frozen=True)
class _Call:
    """One script call waiting for its turn's pipeline."""

    script: AsyncScript
    keys: list[str]
    args: list[Any]
    future: asyncio.Future[Any]


class ScriptPipeline:
    """Runs the queue's Lua scripts, every call of one loop turn in one trip."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._scripts = {
            name: redis.register_script(getattr(scripts, name)) for name in SCRIPTS
        }
        self._batch: list[_Call] = []
        self._flushes: set[asyncio.Task[None]] = set()

    async def run(self, name: str, keys_: list[str], args: list[Any]) -> Any:
        """Run script `name`; its reply, or raise what Redis answered."""
        return await self.call(name, keys_, args)

    def call(self, name: str, keys_: list[str], args: list[Any]) -> asyncio.Future[Any]:
        """Queue a script call for this turn's pipeline; a future of its reply.

        Every call made during one turn of the event loop (a worker appending
        chunks for a hundred replies, a gateway admitting a burst of messages)
        goes to Redis in one pipelined write at the start of the next turn.
        redis-py spends ~110 us of CPU on a lone EVALSHA and ~20-40 us per
        command in a pipeline of 5-20 (measured here); a lone call costs one
        extra trip round the loop, microseconds.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._batch:
            loop.call_soon(self._send_batch)
        self._batch.append(_Call(self._scripts[name], keys_, args, future))
        return future

    async def run_many(
        self, name: str, calls: Sequence[tuple[list[str], list[Any]]]
    ) -> list[Any]:
        """Run one script for many key/argument sets in one pipelined round trip.

        Replies come back in order; a call Redis refused has its error as its
        reply. A lost connection raises.
        """
        futures = [self.call(name, keys_, args) for keys_, args in calls]
        replies = await asyncio.gather(*futures, return_exceptions=True)
        for reply in replies:
            if isinstance(reply, BaseException) and not isinstance(
                reply, ResponseError
            ):
                raise reply
        return replies

    def _send_batch(self) -> None:
        batch, self._batch = self._batch, []
        task = asyncio.ensure_future(self._flush(batch))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush(self, batch: list[_Call]) -> None:
        calls = [c for c in batch if not c.future.done()]  # skip the cancelled
        if not calls:
            return
        try:
            replies = await self._pipeline(calls)
        except BaseException as exc:
            for call in calls:
                if not call.future.done():
                    if isinstance(exc, asyncio.CancelledError):
                        call.future.cancel()
                    else:
                        call.future.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        for call, reply in zip(calls, replies, strict=True):
            if call.future.done():
                continue
            if isinstance(reply, Exception):
                call.future.set_exception(reply)
            else:
                call.future.set_result(reply)

    async def _pipeline(self, calls: Sequence[_Call]) -> list[Any]:
        """Run the calls in one round trip; a failed call's reply is its error.

        Scripts are called by hash, so a Redis that lost its script cache (a
        restart) answers NOSCRIPT: those scripts are loaded and the calls,
        which did not run, are sent again. A lost connection raises.
        """
        if len(calls) == 1:
            call = calls[0]
            try:  # AsyncScript reloads the script itself on NOSCRIPT
                return [await call.script(keys=call.keys, args=call.args)]
            except ResponseError as exc:
                return [exc]
        replies: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        for _ in range(2):
            pipe = self.redis.pipeline(transaction=False)
            for i in todo:
                call = calls[i]
                pipe.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
            results = await pipe.execute(raise_on_error=False)
            missing = []
            for i, result in zip(todo, results, strict=True):
                if isinstance(result, NoScriptError):
                    missing.append(i)
                else:
                    replies[i] = result
            if not missing:
                return replies
            for script in {
                id(calls[i].script): calls[i].script for i in missing
            }.values():
                await self.redis.script_load(script.script)
            todo = missing
        for i in todo:
            replies[i] = NoScriptError("the script could not be loaded")
        return replies
