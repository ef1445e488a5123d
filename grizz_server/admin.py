"""`grizz-server users …` and `grizz-server tokens …`: accounts and device tokens.

`users delete` removes a user with all their data in one transaction (after a
confirmation, unless `--yes`) and closes the open connections of their tokens
like `tokens revoke`; `users rename` keeps the id, data and tokens.

`grizz_server/cli.py` mounts `users_app` and `tokens_app`. Every command takes
`--db-url` (default: `GRIZZ_SERVER_DB_URL`, else the SQLite file under
GRIZZ_HOME). Expected failures print one line `grizz-server: …` on stderr and
exit with the error's code. A device token is printed exactly once, alone on
stdout (so `TOKEN=$(grizz-server tokens add …)` works), and never logged.

Must not import: websockets, redis, the core, textual.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer

from grizz_core.errors import GrizzError

T = TypeVar("T")


def command_group(help: str) -> typer.Typer:
    """A grizz-server command or group: help on no arguments, plain errors
    (no rich tracebacks or markup), no shell-completion commands."""
    return typer.Typer(
        help=help,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )


users_app = command_group(help="Add and list the people who may use this server.")
tokens_app = command_group(
    help="Issue, list and revoke device tokens (the server keeps only their hashes)."
)

DbUrl = Annotated[
    str | None,
    typer.Option(
        "--db-url",
        help="sqlite:///path or postgresql://user@host/db "
        "(default: GRIZZ_SERVER_DB_URL, else server.db under GRIZZ_HOME).",
        show_default=False,
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _with_store(db_url: str | None, action: Callable[[Any], Awaitable[T]]) -> T:
    """Run `action(store)` on an open store; failures become one line + exit code."""
    from grizz_server.store import ServerStore, default_db_url

    async def run() -> T:
        store = await ServerStore.open(db_url or default_db_url(), pool_size=1)
        try:
            return await action(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except GrizzError as exc:
        typer.echo(f"grizz-server: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None


@users_app.command("add")
def users_add(
    name: Annotated[
        str, typer.Argument(help="The user's name (letters, digits, . _ -).")
    ],
    db_url: DbUrl = None,
) -> None:
    """Create a user."""
    user = _with_store(db_url, lambda store: store.add_user(name))
    typer.echo(f"Added user {user.name} (id {user.id}).")
    typer.echo(
        f"Give a device access with: grizz-server tokens add {user.name} --device NAME",
        err=True,
    )


@users_app.command("list")
def users_list(db_url: DbUrl = None, json_output: JsonFlag = False) -> None:
    """List users."""
    found = _with_store(db_url, lambda store: store.list_users())
    if json_output:
        typer.echo(json.dumps([u.__dict__ for u in found], indent=2))
        return
    for user in found:
        typer.echo(f"{user.name}  {user.id}  created {user.created_at[:19]}Z")
    if not found:
        typer.echo("No users yet; add one with: grizz-server users add NAME", err=True)


@users_app.command("delete")
def users_delete(
    name: Annotated[str, typer.Argument(help="The user to delete.")],
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")
    ] = False,
    db_url: DbUrl = None,
) -> None:
    """Delete a user with all their conversations, messages, memory and tokens."""
    if not yes:
        counts = _with_store(db_url, lambda store: store.user_data_counts(name))
        what = ", ".join(f"{n} {label}" for label, n in counts.items())
        if not typer.confirm(
            f"Delete user {name} and all their data ({what})? This cannot be undone",
            default=False,
            err=True,
        ):
            typer.echo(f"grizz-server: Nothing deleted; {name} is kept.", err=True)
            raise typer.Exit(1)
    token_ids = _with_store(db_url, lambda store: store.delete_user(name))
    typer.echo(f"Deleted user {name} and all their data.")
    if token_ids:
        _announce(token_ids)


@users_app.command("rename")
def users_rename(
    old: Annotated[str, typer.Argument(help="The user's current name.")],
    new: Annotated[str, typer.Argument(help="The new name.")],
    db_url: DbUrl = None,
) -> None:
    """Rename a user (their data and device tokens stay theirs)."""
    user = _with_store(db_url, lambda store: store.rename_user(old, new))
    typer.echo(f"Renamed user {old} to {user.name} (id {user.id}).")


def _announce(token_ids: list[str]) -> None:
    """Close the open connections of `token_ids` now, or say when they close."""
    from grizz_server.gateway.revocation import TOKEN_CHECK_S, announce_revoked

    url = _announce_url()
    told = [announce_revoked(token_id, url) for token_id in token_ids]
    if all(told):
        typer.echo("Its open connections are closed now.")
    else:
        typer.echo(
            f"Its open connections close within {TOKEN_CHECK_S:.0f} s (no Redis "
            "reachable to tell the gateways now)."
        )


@tokens_app.command("add")
def tokens_add(
    user: Annotated[str, typer.Argument(help="The user the device belongs to.")],
    device: Annotated[
        str, typer.Option("--device", help="A name for the device, e.g. laptop.")
    ],
    db_url: DbUrl = None,
) -> None:
    """Issue a token for one device and print it once."""
    token, info = _with_store(db_url, lambda store: store.add_token(user, device))
    typer.echo(token)
    typer.echo(
        f"Token {info.id} for {user}'s device '{info.device}'. It is shown only this "
        "once: copy it now (revoke it with `grizz-server tokens revoke "
        f"{info.id}`).",
        err=True,
    )


@tokens_app.command("list")
def tokens_list(
    user: Annotated[
        str | None,
        typer.Argument(help="Whose tokens to list (default: every user's)."),
    ] = None,
    db_url: DbUrl = None,
    json_output: JsonFlag = False,
) -> None:
    """List device tokens (never the tokens themselves), with their user's name."""

    async def fetch(store: Any) -> tuple[list[Any], dict[str, str]]:
        return await store.list_tokens(user), await store.user_names()

    found, names = _with_store(db_url, fetch)
    if json_output:
        rows = [{**t.__dict__, "user": names.get(t.user_id, "")} for t in found]
        typer.echo(json.dumps(rows, indent=2))
        return
    for info in found:
        used = (
            f"last used {info.last_used_at[:19]}Z"
            if info.last_used_at
            else "never used"
        )
        state = "  REVOKED" if info.revoked else ""
        owner = "" if user else f"{names.get(info.user_id, '?')}  "
        typer.echo(
            f"{info.id}  {owner}{info.device}  created {info.created_at[:19]}Z  "
            f"{used}{state}"
        )
    if not found:
        whose = f"{user} has" if user else "No user has"
        typer.echo(f"{whose} no device tokens yet.", err=True)


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: Annotated[str, typer.Argument(help="The token id (or a unique prefix).")],
    db_url: DbUrl = None,
) -> None:
    """Revoke a device token: refused from now on, its open connections closed."""
    from grizz_server.store.server import TOKEN_PREFIX

    if token_id.startswith(TOKEN_PREFIX) or len(token_id) > 32:
        # Never echo what may be a real token back to the terminal or a log.
        typer.echo(
            "grizz-server: That looks like a token, not a token id; use the id shown "
            "by `grizz-server tokens list USER`.",
            err=True,
        )
        raise typer.Exit(2)
    revoked = _with_store(db_url, lambda store: store.revoke_token(token_id))
    if not revoked:
        typer.echo(f"grizz-server: No token with id '{token_id}'.", err=True)
        raise typer.Exit(1)
    from grizz_server.gateway.revocation import TOKEN_CHECK_S, announce_revoked

    if announce_revoked(token_id, _announce_url()):
        typer.echo(f"Revoked token {token_id}; its open connections are closed now.")
    else:
        typer.echo(
            f"Revoked token {token_id}; its open connections close within "
            f"{TOKEN_CHECK_S:.0f} s (no Redis reachable to tell the gateways now)."
        )


def _announce_url() -> str:
    """The configured Redis, else the one of a locally running grizz-server."""
    from grizz_server.health import running_server
    from grizz_server.settings import load_server_settings

    try:
        url = load_server_settings().redis_url
    except GrizzError:
        url = ""
    return url or str(running_server().get("redis_url", ""))
