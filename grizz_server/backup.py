"""`grizz-server backup PATH` and `grizz-server restore PATH` (SQLite store).

`backup` copies the live store with SQLite's online backup API (a server may
keep running and writing: the copy is one consistent snapshot), writes it to
a temporary file next to PATH, checks it with `quick_check` and only then
renames it into place (0600: it holds everyone's messages). `restore` refuses
while a grizz-server runs on this GRIZZ_HOME (the launcher lock, the
processes run.json names), checks the file with `quick_check` and that it is
a grizz-server database, keeps the current store as `<store>.before-restore`,
and copies the backup in; migrations run when the server next starts. A
PostgreSQL store is backed up with its own tools: both commands print that
route (`pg_dump` / `pg_restore`) and exit 2.

Must not import at module level: redis, websockets, the core's session.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Annotated

import typer

from grizz_core.errors import GrizzError, StoreError, UsageError

PG_ROUTE = (
    "The store is PostgreSQL ({where}): back it up with PostgreSQL's own tools.\n"
    "  backup:  pg_dump --format=custom --file=PATH '{url}'\n"
    "  restore: stop grizz-server, then\n"
    "           pg_restore --clean --if-exists --no-owner --dbname='{url}' PATH\n"
    "See the README, section 'Backup and restore'."
)
REQUIRED_TABLES = frozenset({"users", "tokens", "schema_migrations"})

DbUrl = Annotated[
    str | None,
    typer.Option(
        "--db-url",
        help="sqlite:///path or postgresql://… (default: GRIZZ_SERVER_DB_URL, "
        "else server.db under GRIZZ_HOME).",
        show_default=False,
    ),
]


def _store_path(db_url: str | None) -> Path:
    """The SQLite file of the store; for PostgreSQL, print the route and exit 2."""
    from grizz_server.settings import drop_password, load_server_settings
    from grizz_server.store import default_db_url
    from grizz_server.store.engine import parse_url

    url = db_url or load_server_settings().db_url or default_db_url()
    target = parse_url(url)
    if target.path is None:
        shown = drop_password(url)
        typer.echo(PG_ROUTE.format(where=target.label, url=shown), err=True)
        raise typer.Exit(2)
    return target.path


def _copy(source: Path, dest: Path, *, read_only: bool, one_file: bool) -> None:
    """Copy the database `source` into `dest` with SQLite's backup API
    (`one_file`: a rollback journal instead of WAL, so it is one file)."""
    mode = "?mode=ro" if read_only else ""
    src = sqlite3.connect(f"{source.resolve().as_uri()}{mode}", uri=True)
    try:
        dst = sqlite3.connect(dest)
        try:
            src.backup(dst)
            if one_file:
                dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
    finally:
        src.close()


def _check_file(path: Path, what: str) -> None:
    """Raise StoreError unless `path` is a sound grizz-server database."""
    from grizz_server.store.engine import sqlite_damage

    if not path.is_file():
        raise UsageError(f"{what} {path} does not exist.")
    damage = sqlite_damage(path)
    if damage:
        raise StoreError(f"{what} {path} is damaged ({damage}); nothing was changed.")
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        names = {
            row[0]
            for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
    finally:
        conn.close()
    if not names >= REQUIRED_TABLES:
        raise StoreError(
            f"{what} {path} is not a grizz-server database; nothing was changed."
        )


def backup_sqlite(store: Path, dest: Path) -> None:
    """Write a checked snapshot of the live store `store` to `dest`."""
    _check_file(store, "The store")
    if dest.exists():
        raise UsageError(f"{dest} already exists; give a new file name.")
    if not dest.parent.is_dir():
        raise UsageError(f"Cannot write {dest}: its directory does not exist.")
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        _copy(store, tmp, read_only=True, one_file=True)
        _check_file(tmp, "The copy")
        tmp.replace(dest)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _refuse_if_running() -> int:
    """Take this home's launcher lock (returned) unless a server runs here."""
    from grizz_server.generation import previous_generation, take_lock

    fd = take_lock()
    try:
        asyncio.run(previous_generation(wait_s=0))
    except BaseException:
        os.close(fd)
        raise
    return fd


def restore_sqlite(source: Path, store: Path) -> Path | None:
    """Replace the store with `source`; the previous store's copy (if any)."""
    _check_file(source, "The backup")
    if source.resolve() == store.resolve():
        raise UsageError(f"{source} is the store itself.")
    fd = _refuse_if_running()
    try:
        kept = None
        if store.exists():
            kept = store.with_name(store.name + ".before-restore")
            with contextlib.suppress(OSError):
                kept.unlink()
            _copy(store, kept, read_only=False, one_file=True)
            kept.chmod(0o600)
        store.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _copy(source, store, read_only=True, one_file=False)
        store.chmod(0o600)
        return kept
    finally:
        os.close(fd)


def _fail(exc: GrizzError) -> typer.Exit:
    typer.echo(f"grizz-server: {exc}", err=True)
    return typer.Exit(exc.exit_code)


def backup(
    path: Annotated[Path, typer.Argument(help="The new backup file.")],
    db_url: DbUrl = None,
) -> None:
    """Copy the store (SQLite) to PATH while the server keeps running."""
    try:
        store = _store_path(db_url)
        backup_sqlite(store, path.expanduser())
    except GrizzError as exc:
        raise _fail(exc) from None
    except sqlite3.Error as exc:
        raise _fail(StoreError(f"Could not back up {store}: {exc}.")) from None
    typer.echo(f"Backed up {store} to {path}.")


def restore(
    path: Annotated[Path, typer.Argument(help="A file made by `grizz-server backup`.")],
    db_url: DbUrl = None,
) -> None:
    """Replace the store (SQLite) with a backup; the server must be stopped."""
    try:
        store = _store_path(db_url)
        kept = restore_sqlite(path.expanduser(), store)
    except GrizzError as exc:
        raise _fail(exc) from None
    except sqlite3.Error as exc:
        raise _fail(StoreError(f"Could not restore {path}: {exc}.")) from None
    typer.echo(f"Restored {store} from {path}.")
    if kept is not None:
        typer.echo(f"The previous store is kept as {kept}.", err=True)
