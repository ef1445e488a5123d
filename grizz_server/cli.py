"""The `grizz-server` command: run, check, users, tokens (and the single roles).

`run` is what a self-hoster types; `gateway` and `worker` run one role in the
foreground (the launcher starts them, and a multi-machine deployment can run
them directly). Expected failures print one line `grizz-server: …` and exit
with the error's code; no traceback reaches the user.

Must not import at module level: redis, websockets, the store, the core.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Coroutine
from typing import Annotated, Any

import typer

from grizz_core.errors import ConfigError, GrizzError
from grizz_server.admin import command_group, tokens_app, users_app
from grizz_server.backup import backup, restore
from grizz_server.settings import ServerSettings, load_server_settings

app = command_group(
    help="grizz-server: sync Grizz across your devices (gateway, queue, workers)."
)
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.command("backup")(backup)
app.command("restore")(restore)

Host = Annotated[
    str | None,
    typer.Option(
        "--host",
        help=f"Interface to listen on (default: {ServerSettings.host}).",
        show_default=False,
    ),
]
Port = Annotated[
    int | None,
    typer.Option(
        "--port",
        min=1,
        max=65535,
        help=f"Port (WebSocket + HTTP; default: {ServerSettings.port}).",
        show_default=False,
    ),
]
DbUrl = Annotated[
    str | None,
    typer.Option(
        "--db-url",
        help="sqlite:///path or postgresql://user@host/db (default: SQLite "
        "under GRIZZ_HOME).",
        show_default=False,
    ),
]
RedisUrl = Annotated[
    str | None,
    typer.Option(
        "--redis-url",
        help="Redis URL (default: $REDIS_URL; unset = embedded redis-server).",
        show_default=False,
    ),
]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")]
Name = Annotated[str, typer.Option("--name", help="Process name in logs.")]


def _fail(exc: GrizzError) -> typer.Exit:
    typer.echo(f"grizz-server: {exc}", err=True)
    return typer.Exit(exc.exit_code)


def _settings(**flags: Any) -> ServerSettings:
    try:
        settings = load_server_settings(flags)
    except GrizzError as exc:
        raise _fail(exc) from None
    for warning in settings.warnings:
        print(f"grizz-server: {warning}", file=sys.stderr)
    return settings


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        return asyncio.run(coro)
    except GrizzError as exc:
        raise _fail(exc) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _serve(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a gateway or worker; a start-up failure exits with STARTUP_FAILED.

    Why the process stopped goes to its JSON log as `reason` (where the
    launcher reads it) and, when no launcher supervises it, as one line on
    stderr; an unexpected exception is logged with its traceback and exits 1.
    """
    import logging
    import os

    from grizz_server import monitoring
    from grizz_server.logs import one_line
    from grizz_server.settings import STARTUP_FAILED, SUPERVISED_ENV, StartupError

    log = logging.getLogger("grizz_server")
    supervised = bool(os.environ.get(SUPERVISED_ENV))
    try:
        return asyncio.run(coro)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except GrizzError as exc:
        fatal = isinstance(exc, StartupError)
        log.error("cannot start" if fatal else "stopped", extra={"reason": str(exc)})
        if not supervised:
            typer.echo(f"grizz-server: {exc}", err=True)
        raise typer.Exit(STARTUP_FAILED if fatal else exc.exit_code) from None
    except Exception as exc:
        reason = one_line(exc)
        log.exception("crashed", extra={"reason": reason})
        monitoring.flush()
        if not supervised:
            typer.echo(f"grizz-server: {reason}", err=True)
        raise typer.Exit(1) from None


def _logging(name: str, settings: ServerSettings, verbose: bool) -> None:
    from grizz_server import logs, monitoring

    logs.configure(
        name,
        settings.logs_path(),
        verbose=verbose,
        max_bytes=settings.log_max_bytes,
        backups=settings.log_backups,
    )
    monitoring.init(name)


@app.command()
def run(
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            "-w",
            min=1,
            max=64,
            help=f"Worker processes (default: {ServerSettings.workers}).",
        ),
    ] = None,
    host: Host = None,
    port: Port = None,
    db_url: DbUrl = None,
    redis_url: RedisUrl = None,
    verbose: Verbose = False,
) -> None:
    """Run the gateway and N workers (and Redis, if no REDIS_URL is set)."""
    from grizz_server.launcher import Launcher

    settings = _settings(
        workers=workers, host=host, port=port, db_url=db_url, redis_url=redis_url
    )
    if not settings.port:  # devices and `check` need to know where it listens
        raise _fail(ConfigError("`grizz-server run` needs a port from 1 to 65535."))
    _logging("launcher", settings, verbose)
    launcher = Launcher(settings, verbose=verbose)
    code = _run(launcher.run())
    if code and launcher.failed:
        typer.echo(f"grizz-server: {launcher.failed}", err=True)
    raise typer.Exit(code)


@app.command()
def gateway(
    host: Host = None,
    port: Port = None,
    db_url: DbUrl = None,
    redis_url: RedisUrl = None,
    name: Name = "gateway",
    verbose: Verbose = False,
) -> None:
    """Run one gateway process in the foreground (needs REDIS_URL)."""
    from grizz_server.gateway.server import serve_gateway

    settings = _settings(host=host, port=port, db_url=db_url, redis_url=redis_url)
    _require_redis(settings)
    _logging(name, settings, verbose)
    _serve(serve_gateway(settings))


@app.command()
def worker(
    db_url: DbUrl = None,
    redis_url: RedisUrl = None,
    name: Name = "worker",
    burst: Annotated[
        bool, typer.Option("--burst", help="Exit when the queue is empty.")
    ] = False,
    consumer: Annotated[
        str,
        typer.Option(
            "--consumer",
            help="Consumer name in the job group (default: host:pid:random; "
            "never reuse one a live worker holds).",
        ),
    ] = "",
    verbose: Verbose = False,
) -> None:
    """Run one worker process in the foreground (needs REDIS_URL)."""
    from grizz_server.worker.runner import serve_worker

    settings = _settings(db_url=db_url, redis_url=redis_url)
    _require_redis(settings)
    _logging(name, settings, verbose)
    _serve(serve_worker(settings, burst=burst, consumer=consumer))


def _require_redis(settings: ServerSettings) -> None:
    if not settings.redis_url:
        raise _fail(
            GrizzError(
                "Set REDIS_URL (or --redis-url) for a single process; "
                "`grizz-server run` "
                "starts an embedded Redis for you."
            )
        )


@app.command()
def check(
    db_url: DbUrl = None,
    redis_url: RedisUrl = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Report Redis, store, queue depth, pending and dead jobs, live workers."""
    from grizz_server.health import check as run_check

    settings = _settings(db_url=db_url, redis_url=redis_url)
    report = _run(run_check(settings))
    if json_output:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for name, ok, detail in report.lines:
            typer.echo(f"{'ok  ' if ok else 'FAIL'}  {name:<13} {detail}")
        typer.echo("healthy" if report.healthy else "unhealthy")
    raise typer.Exit(0 if report.healthy else 1)


dlq_app = command_group(
    help="Inspect and retry dead-lettered jobs (replies that failed for good)."
)
app.add_typer(dlq_app, name="dlq")


def _redis_url(settings: ServerSettings) -> str:
    from grizz_server.health import running_server

    url = settings.redis_url or str(running_server().get("redis_url", ""))
    if not url:
        raise _fail(GrizzError("No REDIS_URL set and no running grizz-server found."))
    return url


async def _user_names(settings: ServerSettings) -> dict[str, str]:
    """User names by id, or {} when the store cannot be opened (the ids stay)."""
    from grizz_server.store import ServerStore, default_db_url

    try:
        store = await ServerStore.open(settings.db_url or default_db_url(), pool_size=1)
    except GrizzError:
        return {}
    try:
        return await store.user_names()
    finally:
        await store.close()


@dlq_app.command("list")
def dlq_list(
    redis_url: RedisUrl = None,
    db_url: DbUrl = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Newest N.")] = 50,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Dead letters, newest first: job id, user name, attempts, reason."""
    from grizz_server.queue.admin import QueueAdmin
    from grizz_server.queue.jobs import connect_redis
    from grizz_server.queue.pipeline import ScriptPipeline

    settings = _settings(redis_url=redis_url, db_url=db_url)

    async def run() -> list[dict[str, str]]:
        redis = connect_redis(_redis_url(settings))
        try:
            admin = QueueAdmin(ScriptPipeline(redis), settings)
            letters = await admin.dead_letters(limit)
        finally:
            await redis.aclose()
        names = await _user_names(settings) if letters else {}
        return [
            {**item, "user_name": names.get(item.get("user", ""), "")}
            for item in letters
        ]

    letters = _run_redis(run())
    if json_output:
        typer.echo(json.dumps(letters, indent=2))
        return
    for item in letters:
        who = item["user_name"] or f"user {item.get('user', '')}"
        typer.echo(
            f"{item.get('job', '')}  {who}  "
            f"attempts {item.get('attempts', '')}  {item.get('reason', '')}"
        )
    if not letters:
        typer.echo("No dead letters.")


@dlq_app.command("purge")
def dlq_purge(
    job_id: Annotated[
        str | None, typer.Argument(help="One job id (default: every dead letter).")
    ] = None,
    redis_url: RedisUrl = None,
) -> None:
    """Drop dead letters for good: all of them, or one job's."""
    from grizz_server.queue.admin import QueueAdmin
    from grizz_server.queue.jobs import connect_redis
    from grizz_server.queue.pipeline import ScriptPipeline

    settings = _settings(redis_url=redis_url)

    async def run() -> int:
        redis = connect_redis(_redis_url(settings))
        try:
            return await QueueAdmin(ScriptPipeline(redis), settings).purge(job_id or "")
        finally:
            await redis.aclose()

    dropped = _run_redis(run())
    if job_id and not dropped:
        raise _fail(GrizzError(f"Job {job_id} is not in the dead-letter stream."))
    typer.echo(f"Purged {dropped} dead letter{'s' if dropped != 1 else ''}.")


@dlq_app.command("retry")
def dlq_retry(
    job_id: Annotated[str, typer.Argument(help="The job id from `dlq list`.")],
    redis_url: RedisUrl = None,
) -> None:
    """Give a dead-lettered job a fresh set of attempts."""
    from grizz_server import keys
    from grizz_server.queue.admin import QueueAdmin
    from grizz_server.queue.jobs import connect_redis
    from grizz_server.queue.pipeline import ScriptPipeline

    settings = _settings(redis_url=redis_url)

    async def run() -> str:
        redis = connect_redis(_redis_url(settings))
        try:
            admin = QueueAdmin(ScriptPipeline(redis), settings)
            status, info = await admin.requeue(job_id)
            if status == "queued":  # connected devices follow the new attempt
                event = {
                    "kind": "job",
                    "job_id": job_id,
                    "message_id": info["message"],
                    "reply_id": info["reply"],
                    "conversation_id": info["conv"],
                    "cursor": 0,
                    "changes": [],
                }
                await redis.publish(keys.user_changes(info["user"]), json.dumps(event))
            return status
        finally:
            await redis.aclose()

    status = _run_redis(run())
    if status != "queued":
        raise _fail(
            GrizzError(
                f"Job {job_id} is not in the dead-letter stream "
                "(or its record has expired)."
            )
        )
    typer.echo(f"Job {job_id} queued again.")


def _run_redis(coro: Coroutine[Any, Any, Any]) -> Any:
    from redis.exceptions import RedisError

    try:
        return _run(coro)
    except (RedisError, OSError) as exc:
        raise _fail(GrizzError(f"Redis is unreachable ({exc}).")) from None


SERVER_EXTRA = ("redis", "sqlalchemy", "aiohttp")
"""Modules of the `server` extra, which `pip install grizz` leaves out."""


def _missing_extra() -> str:
    """The first module of the server extra that is not installed, or ''."""
    import importlib.util

    for name in SERVER_EXTRA:
        if importlib.util.find_spec(name) is None:
            return name
    return ""


def main() -> None:
    """Entry point of the `grizz-server` script."""
    missing = _missing_extra()
    if missing:
        print(
            f"grizz-server: the server extra is not installed ({missing} is "
            "missing); install it with: pip install 'grizz[server]'",
            file=sys.stderr,
        )
        raise SystemExit(3)
    try:
        app()
    except BrokenPipeError:
        sys.stderr.close()
        raise SystemExit(1) from None
