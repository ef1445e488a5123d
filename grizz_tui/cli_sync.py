"""`grizz login|logout|status|sync`: this device and its sync server.

Exit codes: 0 ok · 1 server unreachable (or a store error) · 2 bad URL ·
3 token refused, or not logged in. Every failure is one line on stderr.

Must not import: textual.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Annotated, Any

import typer

from grizz_core.errors import ConfigError, GrizzError, UsageError

TOKEN_NAME = "server"
"""The device token's name in the keyring (or the 0600 key file)."""
STATUS_TIMEOUT = 3.0


def _fail(error: GrizzError) -> typer.Exit:
    typer.echo(f"grizz: {error}", err=True)
    return typer.Exit(error.exit_code)


def _read_token() -> str:
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass("Device token (input is hidden): ").strip()
    return sys.stdin.readline().strip()


def login(
    url: Annotated[str, typer.Argument(help="wss://HOST, ws://HOST:PORT or https://")],
) -> None:
    """Connect this device to a sync server (the token comes from stdin)."""
    from grizz_tui import config, secrets
    from grizz_tui.store.db import open_database
    from grizz_tui.sync.client import SyncClient, normalise_url
    from grizz_tui.sync.state import remember_login

    try:
        settings = config.load_settings()
        url = normalise_url(url)
        token = _read_token()
        if not token:
            raise UsageError("No device token given; nothing was saved.")
        client = SyncClient(
            url, token, ca_file=settings.sync_ca_file, insecure=settings.sync_insecure
        )
        welcome = asyncio.run(_welcome(client))
        _, notice = secrets.set_key(TOKEN_NAME, token)
        config.set_value("server.url", url)
        db = open_database()
        try:
            fresh = remember_login(
                db, url=url, user=welcome.user, device=welcome.device
            )
        finally:
            db.close()
    except (KeyboardInterrupt, EOFError):
        typer.echo("", err=True)
        raise typer.Exit(130) from None
    except GrizzError as exc:
        raise _fail(exc) from None
    typer.echo(notice, err=True)
    if fresh:
        typer.echo("A new server or user: all local data will be uploaded.", err=True)
    typer.echo(f"Logged in to {url} as {welcome.user} (device {welcome.device}).")


async def _welcome(client: Any) -> Any:
    try:
        return await client.open()
    finally:
        await client.close()


def logout() -> None:
    """Forget the server and the device token (local data stays)."""
    from grizz_tui import config, secrets

    try:
        removed = secrets.delete_key(TOKEN_NAME)
        url = config.load_settings().server_url
        config.unset_value("server.url")
    except GrizzError as exc:
        raise _fail(exc) from None
    if url or removed:
        typer.echo(f"Logged out{f' of {url}' if url else ''}; local data is kept.")
    else:
        typer.echo("Not logged in.")


def status(
    json_output: Annotated[
        bool, typer.Option("--json", help="One JSON object.")
    ] = False,
) -> None:
    """Server, user, device, connection, last sync, outbox and cursor."""
    from grizz_tui import config
    from grizz_tui.store.db import open_database
    from grizz_tui.sync.engine import outbox_size
    from grizz_tui.sync.state import load_state

    try:
        settings = config.load_settings()
        db = open_database()
        try:
            state, outbox = load_state(db), outbox_size(db)
        finally:
            db.close()
        connected, problem = _probe(settings)
    except GrizzError as exc:
        raise _fail(exc) from None
    info: dict[str, Any] = {
        "logged_in": bool(settings.server_url and _token() is not None),
        "server": settings.server_url,
        "user": state.user,
        "device": state.device,
        "connected": connected,
        "problem": problem,
        "last_sync": state.last_sync or None,
        "cursor": state.cursor,
        "outbox": outbox,
    }
    if json_output:
        typer.echo(json.dumps(info, ensure_ascii=False))
        return
    for line in _status_lines(info):
        typer.echo(line)


def _status_lines(info: dict[str, Any]) -> list[str]:
    box = info["outbox"]
    waiting = (
        f"{box['messages']} messages, {box['memory']} notes, "
        f"{box['conversations']} days ({box['pending']} messages not yet sent)"
    )
    if not info["logged_in"]:
        return [
            "Not logged in (direct mode): `grizz login URL` to sync.",
            f"Waiting to sync: {waiting}",
        ]
    link = "connected" if info["connected"] else f"not connected: {info['problem']}"
    return [
        f"Server:    {info['server']} ({link})",
        f"User:      {info['user']} (device {info['device']})",
        f"Last sync: {info['last_sync'] or 'never'}",
        f"Cursor:    {info['cursor']}",
        f"Outbox:    {waiting}",
    ]


def _token() -> str | None:
    from grizz_tui import secrets

    found = secrets.get_key(TOKEN_NAME)
    return found.value if found else None


def _probe(settings: Any) -> tuple[bool, str]:
    """Try a connection with a short timeout: (connected, why not)."""
    from grizz_tui.sync.client import SyncClient

    token = _token()
    if not settings.server_url or token is None:
        return False, "not logged in"
    try:
        client = SyncClient(
            settings.server_url,
            token,
            ca_file=settings.sync_ca_file,
            insecure=settings.sync_insecure,
        )

        async def probe() -> None:
            try:
                await client.open(timeout=STATUS_TIMEOUT)
            finally:
                await client.close()

        asyncio.run(probe())
    except GrizzError as exc:
        return False, str(exc)
    return True, ""


def sync() -> None:
    """One round: push the outbox, pull everything new, apply it."""
    from grizz_tui import config
    from grizz_tui.store.conversations import recover_orphans
    from grizz_tui.store.db import open_database

    try:
        settings = config.load_settings()
        token = _token()
        if not settings.server_url or token is None:
            raise ConfigError("Not logged in; run `grizz login URL` first.")
        db = open_database()
        try:
            recover_orphans(db)
            report = asyncio.run(_sync_once(settings, token, db))
        finally:
            db.close()
    except GrizzError as exc:
        raise _fail(exc) from None
    for line in report.rejected:
        typer.echo(f"grizz: the server refused {line}", err=True)
    sent = f", sent {report.sent}" if report.sent else ""
    typer.echo(f"pushed {report.pushed}{sent}, pulled {report.pulled}")


async def _sync_once(settings: Any, token: str, db: Any) -> Any:
    from grizz_tui.sync.ask import make_client
    from grizz_tui.sync.engine import SyncEngine

    client = make_client(settings, token)
    try:
        await client.open()
        return await SyncEngine(db, client).run_once()
    finally:
        await client.close()


def register(app: typer.Typer) -> None:
    app.command()(login)
    app.command()(logout)
    app.command()(status)
    app.command()(sync)
