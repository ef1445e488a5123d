"""Test helpers: a scripted device (real WebSocket client) and server processes.

`Device` records every frame it receives and rebuilds each reply the way a
real client must: text of an attempt is dropped when a `restart` arrives, and
a `resume` after the last seen entry continues without gaps or repeats.
`ProcessPool` runs gateways and workers as real child processes that tests
can SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from grizz_core import protocol as p
from grizz_server.settings import ServerSettings

TIMEOUT = 20.0


@dataclass
class Reply:
    """A reply as one device sees it."""

    attempt: int = 0
    text: str = ""
    last_entry: str = "0"
    done: p.Done | None = None
    error: p.Error | None = None
    restarts: int = 0
    chunks: list[str] = field(default_factory=list)


class Device:
    """One connected device of a user."""

    def __init__(self, url: str, token: str | None, *, header: bool = True) -> None:
        self.url = url
        self.token = token
        self.header = header
        self.frames: list[p.Frame] = []
        self.replies: dict[str, Reply] = {}
        self.ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self.closed: BaseException | None = None

    async def connect(self) -> Device:
        headers = (
            {"Authorization": f"Bearer {self.token}"}
            if self.header and self.token
            else {}
        )
        self.ws = await connect(
            self.url, additional_headers=headers, open_timeout=10, max_size=2**22
        )
        if not self.header:
            await self.ws.send(p.dump_frame(p.Hello(token=self.token or "")))
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for raw in self.ws:
                frame = p.parse_frame(raw)
                self.frames.append(frame)
                self._apply(frame)
                self._changed.set()
        except Exception as exc:  # the connection went away: record how
            self.closed = exc
        finally:
            if self.closed is None:  # a clean close ends the loop without raising
                self.closed = self.ws.close_exc
            self._changed.set()

    def _apply(self, frame: p.Frame) -> None:
        job = getattr(frame, "job_id", "")
        if not job or isinstance(frame, p.Accepted | p.Job):
            return
        reply = self.replies.setdefault(job, Reply())
        entry = getattr(frame, "entry", "")
        if entry:
            assert _entry_key(entry) > _entry_key(reply.last_entry), (
                "duplicate or out of order"
            )
            reply.last_entry = entry
        if isinstance(frame, p.Restart):
            reply.attempt, reply.text, reply.restarts = (
                frame.attempt,
                "",
                reply.restarts + 1,
            )
        elif isinstance(frame, p.Chunk):
            if frame.attempt > reply.attempt:
                reply.attempt, reply.text = frame.attempt, ""
            reply.text += frame.text
            reply.chunks.append(frame.text)
        elif isinstance(frame, p.Done):
            reply.done = frame
        elif isinstance(frame, p.Error):
            reply.error = frame

    async def reconnect(self) -> Device:
        """Drop the connection (if any) and connect again, keeping what was seen."""
        await self.close()
        self.closed = None
        return await self.connect()

    async def resume(self, job_id: str) -> None:
        reply = self.replies.get(job_id, Reply())
        await self.send_frame(p.Resume(job_id=job_id, after=reply.last_entry))

    async def send_frame(self, frame: p.Frame) -> None:
        assert self.ws is not None
        await self.ws.send(p.dump_frame(frame))

    async def send_raw(self, raw: str | bytes) -> None:
        assert self.ws is not None
        await self.ws.send(raw)

    async def wait_for(self, check: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
        """Wait until `check()` is truthy (re-checked on every frame)."""
        deadline = time.monotonic() + timeout
        while True:
            result = check()
            if result:
                return result
            if self.closed is not None and not result:
                result = check()
                if result:
                    return result
                raise AssertionError(
                    f"connection closed while waiting: {self.closed!r}"
                )
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out; last frames: {self.frames[-5:]}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left, 0.5)):
                    await self._changed.wait()

    def frame(self, kind: type[p.Frame], **match: Any) -> Any:
        for frame in self.frames:
            if isinstance(frame, kind) and all(
                getattr(frame, k) == v for k, v in match.items()
            ):
                return frame
        return None

    async def request(self, frame: p.Frame, answer: type[p.Frame]) -> Any:
        """Send a frame with a fresh ref; return the answer (or error) with that ref."""
        ref = uuid.uuid4().hex[:8]
        frame = type(frame)(**{**frame.__dict__, "ref": ref})
        await self.send_frame(frame)
        return await self.wait_for(
            lambda: self.frame(answer, ref=ref) or self.frame(p.Error, ref=ref)
        )

    async def say(self, text: str, **kwargs: Any) -> p.Accepted:
        answer = await self.request(p.Send(text=text, **kwargs), p.Accepted)
        assert isinstance(answer, p.Accepted), answer
        return answer

    async def finished(self, job_id: str, timeout: float = TIMEOUT) -> Reply:
        def check() -> Reply | None:
            reply = self.replies.get(job_id)
            return reply if reply and (reply.done or reply.error) else None

        result: Reply = await self.wait_for(check, timeout)
        return result

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            with contextlib.suppress(BaseException):
                await self._reader


async def until(
    check: Callable[[], Any], *, timeout: float = TIMEOUT, what: str = ""
) -> Any:
    """Wait until `check()` (sync, or returning an awaitable) is truthy.

    A deterministic wait on a condition, never a fixed sleep: it returns as
    soon as the condition holds and fails after `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.005)


def _entry_key(entry: str) -> tuple[int, int]:
    if entry == "0":
        return (0, 0)
    ms, seq = entry.split("-")
    return (int(ms), int(seq))


def _child_main(role: str, name: str, env: dict[str, str]) -> None:
    """Body of a forked gateway/worker process (see `ProcessPool`)."""
    import asyncio as aio

    os.environ.update(env)
    from grizz_server import logs
    from grizz_server.settings import load_server_settings

    settings = load_server_settings()
    logs.configure(name, settings.logs_path())
    if role == "worker":
        from grizz_server.worker.runner import serve_worker

        aio.run(serve_worker(settings))
    else:
        from grizz_server.gateway.server import serve_gateway

        aio.run(serve_gateway(settings))


class ProcessPool:
    """Real worker/gateway processes forked from a preloaded fork server.

    Spawning a fresh interpreter costs ~1.5 s of imports on this machine; a
    crash loop restarts a worker after every kill, so children fork from a
    server that has imported everything already (a few milliseconds each).
    They are separate processes all the same: SIGKILL ends them mid-write.
    """

    PRELOAD = (
        "grizz_server.worker.runner",
        "grizz_server.gateway.server",
        "grizz_server.store",
        "grizz_tui.factory",
        "tests.server.harness",
    )

    def __init__(self, settings: ServerSettings, env: dict[str, str]) -> None:
        import multiprocessing

        self.ctx = multiprocessing.get_context("forkserver")
        self.ctx.set_forkserver_preload(list(self.PRELOAD))
        self.env = {**settings.env(), **env}
        self.procs: dict[int, Any] = {}
        self.count = 0

    def start(self, role: str = "worker", **overrides: str) -> int:
        self.count += 1
        proc = self.ctx.Process(
            target=_child_main,
            args=(role, f"{role}-{self.count}", {**self.env, **overrides}),
            daemon=True,
        )
        proc.start()
        assert proc.pid is not None
        self.procs[proc.pid] = proc
        return proc.pid

    def kill(self, pid: int) -> None:
        proc = self.procs.pop(pid)
        os.kill(pid, signal.SIGKILL)
        proc.join(10)

    def alive(self) -> set[int]:
        return {pid for pid, proc in self.procs.items() if proc.is_alive()}

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.is_alive():
                proc.terminate()
        for proc in self.procs.values():
            proc.join(15)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        self.procs.clear()


CLI = [sys.executable, "-m", "grizz_server"]
"""`grizz-server` as a self-hoster runs it: its own process, this venv."""


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `grizz-server ARGS` to the end: its exit code, stdout and stderr."""
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def provider_env_vars(fake: Any) -> dict[str, str]:
    """The environment that points a grizz-server process at the fake provider
    (no HTTP retries of its own: the queue's attempts are the budget)."""
    return {
        "OPENAI_BASE_URL": fake.base_url,
        "OPENAI_API_KEY": "sk-test",
        "GRIZZ_SERVER_MODEL": "fake-model",
        "GRIZZ_SERVER_MAX_RETRIES": "0",
    }
