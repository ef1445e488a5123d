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

from grizz_server.admin import tokens_app, users_app
from grizz_server.settings import ServerSettings, load_server_settings
from grizz_tui.errors import GrizzError

app = typer.Typer(
    help="grizz-server: sync Grizz across your devices (gateway, queue, workers).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")

Host = Annotated[str | None, typer.Option("--host", help="Interface to listen on.")]
Port = Annotated[int | None, typer.Option("--port", help="Port (WebSocket + HTTP).")]
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
        return load_server_settings(flags)
    except GrizzError as exc:
        raise _fail(exc) from None


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        return asyncio.run(coro)
    except GrizzError as exc:
        raise _fail(exc) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _logging(name: str, settings: ServerSettings, verbose: bool) -> None:
    from grizz_server import logs

    logs.configure(name, settings.logs_path(), verbose=verbose)


@app.command()
def run(
    workers: Annotated[
        int | None,
        typer.Option("--workers", "-w", min=1, max=64, help="Worker processes."),
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
    _logging("launcher", settings, verbose)
    code = _run(Launcher(settings, verbose=verbose).run())
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
    _run(serve_gateway(settings))


@app.command()
def worker(
    db_url: DbUrl = None,
    redis_url: RedisUrl = None,
    name: Name = "worker",
    burst: Annotated[
        bool, typer.Option("--burst", help="Exit when the queue is empty.")
    ] = False,
    verbose: Verbose = False,
) -> None:
    """Run one worker process in the foreground (needs REDIS_URL)."""
    from grizz_server.worker.runner import serve_worker

    settings = _settings(db_url=db_url, redis_url=redis_url)
    _require_redis(settings)
    _logging(name, settings, verbose)
    _run(serve_worker(settings, burst=burst))


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


def main() -> None:
    """Entry point of the `grizz-server` script."""
    try:
        app()
    except BrokenPipeError:
        sys.stderr.close()
        raise SystemExit(1) from None
