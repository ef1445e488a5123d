"""The `grizz` command line (Typer).

`grizz` opens the app (imported lazily); `grizz ask` never loads textual.
Data commands (memory, history, search, export, import) live in `cli_data.py`,
sync commands (login, logout, status, sync) in `cli_sync.py`.
Every expected failure prints one line `grizz: …` on stderr and exits with the
error's code; no traceback reaches the user.
"""

from __future__ import annotations

import sqlite3
import sys
from typing import Annotated

import typer

from grizz_core.errors import GrizzError
from grizz_tui import __version__

app = typer.Typer(
    name="grizz",
    help="Grizz: a warm, honest AI companion (a friendly bear) in your terminal.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
config_app = typer.Typer(help="Show and change settings.", no_args_is_help=True)
key_app = typer.Typer(
    help="Store API keys (OS keyring, or a 0600 file).", no_args_is_help=True
)
app.add_typer(config_app, name="config")
app.add_typer(key_app, name="key")


def fail(error: GrizzError) -> typer.Exit:
    typer.echo(f"grizz: {error}", err=True)
    return typer.Exit(error.exit_code)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"grizz {__version__}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def main_callback(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version."
        ),
    ] = False,
) -> None:
    """Run `grizz` alone to open today's conversation."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        from grizz_tui.tui.launch import run_app
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("grizz_tui.tui"):
            raise
        typer.echo(ctx.get_help())
        raise typer.Exit() from None
    raise typer.Exit(run_app())


@app.command()
def ask(
    prompt: Annotated[
        list[str] | None, typer.Argument(help="The prompt (stdin is added after it).")
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object.")
    ] = False,
    no_stream: Annotated[
        bool, typer.Option("--no-stream", help="Ask for the whole reply at once.")
    ] = False,
    image: Annotated[
        list[str] | None,
        typer.Option("--image", "-i", help="Attach an image (repeatable)."),
    ] = None,
    ephemeral: Annotated[
        bool, typer.Option("--ephemeral", help="No history in, nothing stored.")
    ] = False,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model to use.")
    ] = None,
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="OpenAI-compatible base URL.")
    ] = None,
    provider: Annotated[
        str | None, typer.Option("--provider", help="Who answers: openai or local.")
    ] = None,
) -> None:
    """Ask Grizz one thing; the reply streams to stdout."""
    from grizz_tui.ask import AskOptions, run

    code = run(
        AskOptions(
            words=prompt or [],
            json_output=json_output,
            stream=not no_stream,
            images=image or [],
            ephemeral=ephemeral,
            overrides={"model": model, "base_url": base_url, "provider": provider},
        )
    )
    raise typer.Exit(code)


@config_app.command("path")
def config_path() -> None:
    """Print where the config file, database and key file live."""
    from grizz_core import paths

    typer.echo(f"config:   {paths.config_file()}")
    typer.echo(f"database: {paths.db_path()}")
    typer.echo(f"keys:     {paths.secrets_file()} (used only without an OS keyring)")


@config_app.command("get")
def config_get(
    key: Annotated[str | None, typer.Argument(help="Setting (all if omitted).")] = None,
) -> None:
    """Show effective settings and where each came from."""
    from grizz_tui import config

    try:
        settings = config.load_settings()
        if key is not None:
            typer.echo(_format_value(settings.get(key)))
            return
        for name, value, source in config.describe(settings):
            typer.echo(f"{name} = {_format_value(value)}  ({source})")
    except GrizzError as exc:
        raise fail(exc) from None


@config_app.command("set", context_settings={"ignore_unknown_options": True})
def config_set(key: str, value: str) -> None:
    """Write a setting to the config file (negative numbers work: `-1`)."""
    from grizz_tui import config

    try:
        if key == "tui.theme":
            _check_theme(value)
        stored = config.set_value(key, value)
    except GrizzError as exc:
        raise fail(exc) from None
    typer.echo(f"{key} = {_format_value(stored)}")


@config_app.command("unset")
def config_unset(key: str) -> None:
    """Remove a setting from the config file (back to its default)."""
    from grizz_tui import config

    try:
        config.unset_value(key)
    except GrizzError as exc:
        raise fail(exc) from None


def _check_theme(name: str) -> None:
    """Refuse a theme the app does not have (only the built-in ones can be set)."""
    from grizz_core.errors import ConfigError

    try:
        from textual.theme import BUILTIN_THEMES
    except ImportError:  # the app is not installed: nothing to check against
        return
    if name not in BUILTIN_THEMES:
        raise ConfigError(
            f"Unknown theme {name!r}. Themes: {', '.join(sorted(BUILTIN_THEMES))}."
        )


def _format_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@key_app.command("set")
def key_set(name: Annotated[str, typer.Argument(help="Key name.")] = "openai") -> None:
    """Store a key, read from stdin or a hidden prompt (never echoed)."""
    from grizz_tui import secrets

    try:
        if sys.stdin.isatty():
            import getpass

            value = getpass.getpass(f"Paste the '{name}' key (input is hidden): ")
        else:
            value = sys.stdin.readline()
        _, notice = secrets.set_key(name, value)
    except (KeyboardInterrupt, EOFError):
        typer.echo("", err=True)
        raise typer.Exit(130) from None
    except GrizzError as exc:
        raise fail(exc) from None
    typer.echo(notice, err=True)


@key_app.command("status")
def key_status(
    name: Annotated[str, typer.Argument(help="Key name.")] = "openai",
) -> None:
    """Say where a key would be found (never prints the key)."""
    from grizz_tui import secrets

    try:
        found = secrets.get_key(name)
    except GrizzError as exc:
        raise fail(exc) from None
    if found is None:
        typer.echo(f"No key '{name}' is stored.")
        raise typer.Exit(1)
    typer.echo(f"Key '{name}' comes from {found.where}.")


@key_app.command("rm")
def key_rm(name: Annotated[str, typer.Argument(help="Key name.")] = "openai") -> None:
    """Delete a stored key (environment variables are not touched)."""
    from grizz_tui import secrets

    try:
        removed = secrets.delete_key(name)
    except GrizzError as exc:
        raise fail(exc) from None
    typer.echo(f"Removed key '{name}'." if removed else f"No stored key '{name}'.")


def _register_data_commands() -> None:
    from grizz_tui import cli_data, cli_local, cli_sync

    cli_data.register(app)
    cli_local.register(app)
    cli_sync.register(app)


_register_data_commands()


def non_utf8_argument(args: list[str]) -> str | None:
    """The first argument the shell did not give as UTF-8 (Python keeps its
    undecodable bytes as surrogates, which no store or provider accepts)."""
    for arg in args:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError as exc:
            bad = arg[exc.start].encode("utf-8", "surrogateescape")
            shown = arg.encode("utf-8", "backslashreplace").decode()
            return (
                f"the argument '{shown}' is not UTF-8 text (byte {bad[0]:#04x} at "
                f"offset {exc.start}); set a UTF-8 locale or convert it with iconv."
            )
    return None


def main() -> None:
    """Console-script entry point."""
    problem = non_utf8_argument(sys.argv[1:])
    if problem is not None:
        print(f"grizz: {problem}", file=sys.stderr)
        sys.exit(2)
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except sqlite3.DatabaseError as exc:  # damage found after a daily check passed
        from grizz_core import paths
        from grizz_tui.store.db import store_error

        print(f"grizz: {store_error(paths.db_path(), exc)}", file=sys.stderr)
        sys.exit(1)
