"""The worker loop: promote retries, reclaim stale jobs, read new ones, run them.

Each job runs as its own task next to a lease keeper that renews the lease
every third of `lease_ms`; when a renewal finds the job fenced (another
attempt took over) the task is cancelled. On SIGTERM the loop stops reading,
lets running replies finish for `shutdown_grace_s`, then hands the rest back
for immediate reclaim. A heartbeat key tells `grizz-server check` it is alive.

Must not import: websockets, textual.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import socket
import time
import uuid
from dataclasses import replace
from urllib.parse import urlsplit

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from grizz_core.errors import (
    AuthError,
    ConfigError,
    GrizzError,
    ProviderError,
    StoreError,
)
from grizz_core.protocol import JOB_FAILED
from grizz_core.providers.base import Provider
from grizz_server import keys
from grizz_server.aio import check_cancelled, settle_heap
from grizz_server.queue.jobs import Attempt, Delivery, connect_redis
from grizz_server.queue.leases import JobLeases
from grizz_server.queue.pipeline import ScriptPipeline
from grizz_server.settings import ServerSettings, startup_failure
from grizz_server.timings import JOB_DURATION, QUEUE_WAIT
from grizz_server.worker.handlers import Fenced, WorkerContext, generate_reply

log = logging.getLogger(__name__)
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)


def consumer_name() -> str:
    """Unique per process: `host:pid:random`, so a restart never reuses a PEL."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """One worker process's job loop (`concurrency` replies at once)."""

    def __init__(self, ctx: WorkerContext, settings: ServerSettings) -> None:
        self.ctx = ctx
        self.settings = settings
        self.queue = ctx.queue
        self.name = ctx.queue.consumer
        self.tasks: dict[asyncio.Task[None], Delivery] = {}
        self.stopping = asyncio.Event()
        self._last_reclaim = 0.0
        self._last_promote = 0.0
        self.lost: list[Attempt] = []
        """Attempts cut off by a Redis outage, to hand back once it is back."""

    def stop(self) -> None:
        self.stopping.set()

    async def run(self, *, burst: bool = False) -> None:
        """Work until `stop()` (or, with `burst`, until the queue is drained)."""
        await self._until_redis(self.queue.ensure_group)
        heartbeat = asyncio.create_task(self._heartbeat())
        log.info("worker started", extra={"consumer": self.name})
        try:
            while not self.stopping.is_set():
                check_cancelled()
                try:
                    got = await self._step()
                    if self.lost:
                        await self._hand_back_lost()
                except REDIS_DOWN as exc:
                    log.warning(
                        "redis unavailable; retrying", extra={"error": str(exc)}
                    )
                    await asyncio.sleep(0.5)
                    continue
                if burst and not got and not self.tasks:
                    break
            await self._drain()
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError, *REDIS_DOWN, RedisError):
                await heartbeat
                await self.ctx.redis.delete(keys.worker(self.name))
                await self.ctx.redis.zrem(keys.WORKERS, self.name)
            log.info("worker stopped", extra={"consumer": self.name})

    async def _until_redis(self, call: object) -> None:
        while True:
            try:
                await call()  # type: ignore[operator]
                return
            except REDIS_DOWN as exc:
                log.warning("redis unavailable; retrying", extra={"error": str(exc)})
                await asyncio.sleep(0.5)

    async def _step(self) -> bool:
        """One loop turn; True when it found work."""
        now = time.monotonic()
        if now - self._last_promote >= self.settings.block_ms / 1000:
            self._last_promote = now
            await self.queue.promote()
        free = self.settings.worker_concurrency - len(self.tasks)
        if free <= 0:
            await asyncio.wait(
                self.tasks,
                timeout=self.settings.block_ms / 1000,
                return_when=asyncio.FIRST_COMPLETED,
            )
            return True
        deliveries = await self._reclaim_stale(free)
        if not deliveries:
            deliveries = await self._read_batch(free)
        if not deliveries:
            return False
        # a Redis error here leaves the whole batch pending, for reclaim
        begun = await self.queue.begin_many(deliveries)
        for delivery, attempt in zip(deliveries, begun, strict=True):
            if not isinstance(attempt, Attempt):
                if attempt == "dead":
                    log.warning("job dead-lettered", extra={"job": delivery.job_id})
                continue
            task = asyncio.create_task(self._run(attempt))
            self.tasks[task] = delivery
            task.add_done_callback(self._forget)
        # let the new replies take their first steps (context reads, the
        # model request) before this loop sends its next XREADGROUP
        await asyncio.sleep(0)
        return True

    def _forget(self, task: asyncio.Task[None]) -> None:
        self.tasks.pop(task, None)

    async def _reclaim_stale(self, free: int) -> list[Delivery]:
        period = max(self.settings.block_ms, self.settings.visibility_ms // 4) / 1000
        if time.monotonic() - self._last_reclaim < period:
            return []
        self._last_reclaim = time.monotonic()
        found = await self.queue.reclaim(free)
        if found:
            log.info(
                "reclaimed stale jobs",
                extra={"jobs": ",".join(d.job_id for d in found)},
            )
        return found

    async def _hand_back_lost(self) -> None:
        """Release the attempts a Redis outage cut off (a restarted Redis
        still holds their leases) and reclaim at once, rather than leave
        them to the visibility timeout."""
        while self.lost:
            await self.queue.release(self.lost[0])
            self.lost.pop(0)
        self._last_reclaim = 0.0

    async def _read_batch(self, free: int) -> list[Delivery]:
        return await self.queue.read(free, self.settings.block_ms)

    async def _run(self, begun: Attempt) -> None:
        log.debug(  # per-job lines are debug: at 1,000 jobs/s they cost a core
            "job started",
            extra={"job": begun.delivery.job_id, "attempt": begun.attempt},
        )
        started = time.time()
        queued_ms = begun.delivery.entry.partition("-")[0]
        if queued_ms.isdigit():
            self.ctx.timings.observe(QUEUE_WAIT, started - int(queued_ms) / 1000)
        job = asyncio.create_task(generate_reply(self.ctx, begun))
        keeper = asyncio.create_task(self._keep_lease(begun, job))
        try:
            await self._outcome(begun, job)
        finally:
            keeper.cancel()
            self.queue.forget(begun)
            self.ctx.timings.observe(JOB_DURATION, time.time() - started)

    async def _keep_lease(self, attempt: Attempt, job: asyncio.Task[object]) -> None:
        period = self.settings.lease_ms / 3000
        while not job.done():
            check_cancelled()
            await asyncio.sleep(period)
            try:
                owner = await self.queue.extend(attempt)
            except REDIS_DOWN:
                continue  # keep trying; the fence protects the job meanwhile
            if not owner:
                log.warning(
                    "job fenced off; stopping", extra={"job": attempt.delivery.job_id}
                )
                job.cancel()
                return

    async def _outcome(self, attempt: Attempt, job: asyncio.Task[object]) -> None:
        extra = {"job": attempt.delivery.job_id, "attempt": attempt.attempt}
        try:
            await asyncio.shield(job)
            log.debug("job finished", extra=extra)
        except (Fenced, asyncio.CancelledError):
            if not job.done():
                job.cancel()
                with contextlib.suppress(BaseException):
                    await job
            if self.stopping.is_set():
                with contextlib.suppress(*REDIS_DOWN, RedisError):
                    await self.queue.release(attempt)
                log.info("job handed back", extra=extra)
            else:
                log.warning("job attempt abandoned (fenced)", extra=extra)
        except REDIS_DOWN as exc:
            log.warning(
                "redis lost mid-job; handing it back once redis is back",
                extra={**extra, "error": str(exc)},
            )
            self.lost.append(attempt)
        except Exception as exc:
            await self._fail(attempt, exc)

    async def _fail(self, attempt: Attempt, exc: Exception) -> None:
        retryable, reason = classify(exc)
        self.ctx.timings.error(error_kind(exc))
        extra = {"job": attempt.delivery.job_id, "attempt": attempt.attempt}
        if not isinstance(exc, GrizzError | LookupError):  # reported (monitoring)
            log.error(
                "job crashed",
                exc_info=exc,
                extra={**extra, "user": attempt.delivery.user_id},
            )
        try:
            outcome = await self.queue.fail(
                attempt,
                code=JOB_FAILED,
                reason=for_devices(reason, self._provider_url()),
                retryable=retryable,
            )
        except REDIS_DOWN:
            return
        log.warning("job failed", extra={**extra, "outcome": outcome, "reason": reason})

    def _provider_url(self) -> str:
        url = getattr(self.ctx.provider, "base_url", None)
        return url if isinstance(url, str) else self.settings.base_url

    async def _drain(self) -> None:
        if not self.tasks:
            return
        log.info("waiting for running jobs", extra={"jobs": len(self.tasks)})
        _, pending = await asyncio.wait(
            self.tasks, timeout=self.settings.shutdown_grace_s
        )
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)

    async def _heartbeat(self) -> None:
        ms = self.settings.heartbeat_ms
        while True:
            check_cancelled()
            with contextlib.suppress(*REDIS_DOWN, RedisError):
                now = int(time.time() * 1000)
                info = json.dumps(
                    {
                        "pid": os.getpid(),
                        "jobs": len(self.tasks),
                        "ts": now,
                        "rss": resident_bytes(),
                        "cpu_s": round(time.process_time(), 3),
                    }
                )
                await self.ctx.redis.set(keys.worker(self.name), info, px=ms * 3)
                await self.ctx.redis.zadd(keys.WORKERS, {self.name: now})
                await self.ctx.timings.flush(self.ctx.redis)
            await asyncio.sleep(ms / 1000)


def resident_bytes() -> int:
    """This process's resident memory (0 where /proc is not there)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def error_kind(exc: Exception) -> str:
    """A failed attempt's kind for `grizz_provider_errors_total{kind}`: a
    handful of values (`http_429`, `http_5xx`, `network`, …), never text."""
    if isinstance(exc, ProviderError):
        if exc.status is None:
            return "network" if exc.retryable else "provider"
        if exc.status in (401, 403, 404, 408, 409, 413, 429):
            return f"http_{exc.status}"
        return f"http_{exc.status // 100}xx"
    for kind, types in (
        ("auth", AuthError),
        ("config", ConfigError),
        ("store", StoreError),
        ("lookup", LookupError),
        ("other", GrizzError),
    ):
        if isinstance(exc, types):
            return kind
    return "internal"


def classify(exc: Exception) -> tuple[bool, str]:
    """(retryable, one-sentence reason) for a failed attempt."""
    if isinstance(exc, ProviderError):
        return exc.retryable, str(exc)
    if isinstance(exc, AuthError | ConfigError):
        return False, str(exc)
    if isinstance(exc, StoreError):
        return True, str(exc)
    if isinstance(exc, LookupError):
        return False, str(exc)
    if isinstance(exc, GrizzError):
        return False, str(exc)
    return True, f"Internal error in the worker ({type(exc).__name__})."


def for_devices(reason: str, base_url: str) -> str:
    """`reason` as devices see it: without the provider's address, which is
    the server's business (the server log keeps the full sentence), and
    without the HTTP client's retry count (the worker's provider makes none).
    """
    parts = urlsplit(base_url)
    text = re.sub(r" after \d+ retries", "", reason)
    for where in (f"{base_url.rstrip('/')}/chat/completions", base_url.rstrip("/")):
        text = text.replace(where, "the provider's endpoint")
    for where in filter(None, (parts.netloc, parts.hostname)):
        text = text.replace(f"The provider at {where}", "The provider")
        text = text.replace(where, "the provider")
    return text[:1].upper() + text[1:]


async def warm_up(ctx: WorkerContext) -> None:
    """Pay first-use costs (lazy imports, SQL compilation) before taking jobs.

    The lease keeper shares the event loop with the reply; half a second of
    first-request imports on a busy machine would let the lease lapse and
    hand a live job to another worker for no reason.
    """
    import anyio._backends._asyncio  # noqa: F401  (httpx's first request imports it)

    from grizz_core.companion import context, tools  # noqa: F401

    probe = ctx.store.for_user("00000000-0000-0000-0000-000000000000")
    await probe.get_message("warm-up")
    await probe.recent_messages("warm-up", limit=1)
    await probe.previous_day("0000-00-00")
    await probe.relevant_memories("warm up", limit=1)
    await probe.current_seq()


def make_worker_provider(
    settings: ServerSettings, *, http: str = "aiohttp"
) -> Provider:
    """The provider the server's settings select (`ProviderSettings` and
    `api_key`), one kept-alive connection per concurrent reply.

    It never retries a request itself (`max_retries=0`): the queue's
    `max_attempts` is the one budget, so a message the provider keeps failing
    on costs at most `max_attempts` provider requests, each after the queue's
    backoff (README, "Retries").

    Raises:
        ConfigError: a hosted API and no `api_key` (exit code 3).
    """
    from grizz_core.providers.factory import make_provider

    return make_provider(
        replace(settings, max_retries=0),
        api_key=settings.api_key or None,
        missing_key=(
            f"No API key for {settings.base_url}. Set GRIZZ_SERVER_API_KEY (or "
            "OPENAI_API_KEY, or api_key in the server's TOML file), or point "
            "GRIZZ_SERVER_BASE_URL at a local server."
        ),
        max_connections=settings.worker_concurrency,
        http=http,
    )


async def serve_worker(
    settings: ServerSettings, *, burst: bool = False, consumer: str = ""
) -> None:
    """A worker process: open Redis, the store and the provider; run until SIGTERM.

    Args:
        settings: the server's settings.
        burst: exit once the queue is drained.
        consumer: its consumer name in the group (the launcher gives one, to
            requeue its jobs at once if the process dies); default: a new one.
    """
    from grizz_server.store import ServerStore, default_db_url

    provider = make_worker_provider(settings)
    redis = connect_redis(settings.redis_url)
    store: ServerStore | None = None
    try:
        store = await ServerStore.open(settings.db_url or default_db_url())
        queue = JobLeases(
            ScriptPipeline(redis), settings, consumer=consumer or consumer_name()
        )
        ctx = WorkerContext(redis, queue, store, provider, settings)
        await warm_up(ctx)
    except BaseException as exc:
        await provider.aclose()
        if store is not None:
            await store.close()
        await redis.aclose()
        fatal = startup_failure(exc)
        if fatal is None or fatal is exc:
            raise
        raise fatal from exc
    worker = Worker(ctx, settings)
    settle_heap()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    try:
        await worker.run(burst=burst)
    finally:
        await provider.aclose()
        await store.close()
        await redis.aclose()
