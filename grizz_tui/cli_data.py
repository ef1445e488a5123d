"""`grizz memory|history|search|export|import`: the user's data from the shell."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from grizz_core.errors import GrizzError, UsageError

memory_app = typer.Typer(help="Grizz's notes about you.", no_args_is_help=True)


@contextmanager
def _database() -> Iterator[Any]:
    """Open the store, turning every expected failure into one line + exit code."""
    from grizz_tui.store.db import open_database, translate_errors

    try:
        db = open_database(check="daily")
        with translate_errors(db.path):
            yield db
    except GrizzError as exc:
        typer.echo(f"grizz: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None


def _tz() -> str:
    from grizz_tui.config import load_settings

    return load_settings().timezone


def plural(count: int, word: str) -> str:
    """`1 day`, `2 days`, `1,746 messages`."""
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def _note_line(item: Any) -> str:
    title = f"{item.title}: " if item.title else ""
    return f"{item.id[:8]}  {title}{item.content}"


@memory_app.command("list")
def memory_list(json_output: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List Grizz's notes, newest first."""
    from grizz_tui.store.memory import list_memory

    with _database() as db:
        items = list_memory(db)
    if json_output:
        typer.echo(
            json.dumps([m.to_dict() for m in items], ensure_ascii=False, indent=2)
        )
        return
    for item in items:
        typer.echo(_note_line(item))
    if not items:
        typer.echo("Grizz has no notes yet.", err=True)


@memory_app.command("add")
def memory_add(
    content: Annotated[list[str], typer.Argument(help="What Grizz should remember.")],
    title: Annotated[str, typer.Option("--title", "-t")] = "",
) -> None:
    """Add a note."""
    from grizz_tui.store.memory import add_memory

    text = " ".join(content).strip()
    if not text:
        typer.echo("grizz: the note is empty.", err=True)
        raise typer.Exit(2)
    with _database() as db:
        item = add_memory(db, text, title=title, properties={"source": "user"})
    typer.echo(item.id[:8])


@memory_app.command("edit")
def memory_edit(
    ref: Annotated[str, typer.Argument(help="Note id or prefix (≥ 4 chars).")],
    content: Annotated[list[str] | None, typer.Argument(help="New text.")] = None,
    title: Annotated[str | None, typer.Option("--title", "-t")] = None,
) -> None:
    """Change a note's text and/or title."""
    from grizz_tui.store.memory import update_memory

    text = " ".join(content or []).strip() or None
    if text is None and title is None:
        typer.echo("grizz: give new text or --title.", err=True)
        raise typer.Exit(2)
    with _database() as db:
        item = update_memory(db, ref, content=text, title=title)
    if item is None:
        typer.echo(f"grizz: no note '{ref}'.", err=True)
        raise typer.Exit(1)
    typer.echo(_note_line(item))


@memory_app.command("rm")
def memory_rm(
    ref: Annotated[str, typer.Argument(help="Note id or prefix (≥ 4 chars).")],
) -> None:
    """Delete a note (kept as a tombstone so the deletion syncs)."""
    from grizz_tui.store.memory import delete_memory

    with _database() as db:
        item = delete_memory(db, ref)
    if item is None:
        typer.echo(f"grizz: no note '{ref}'.", err=True)
        raise typer.Exit(1)
    typer.echo(f"Forgot {item.id[:8]}.")


@memory_app.command("search")
def memory_search(query: Annotated[list[str], typer.Argument()]) -> None:
    """Search notes."""
    from grizz_tui.store.memory import search_memory

    with _database() as db:
        items = search_memory(db, " ".join(query))
    for item in items:
        typer.echo(_note_line(item))
    if not items:
        raise typer.Exit(1)


def history(
    day: Annotated[
        str | None, typer.Option("--day", "-d", help="YYYY-MM-DD, today, yesterday.")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List the days you talked with Grizz, or show one day."""
    from grizz_core.days import parse_day
    from grizz_tui.store import conversations as conv

    with _database() as db:
        conv.recover_orphans(db)  # a reply whose writer died is not "streaming"
        if day is None:
            days = conv.list_days(db)
            if json_output:
                typer.echo(
                    json.dumps([d.__dict__ for d in days], ensure_ascii=False, indent=2)
                )
            for d in [] if json_output else days:
                count = plural(d.messages, "message").rjust(13)
                typer.echo(f"{d.day}  {count}  {d.first_line}")
            return
        try:
            wanted = parse_day(day, _tz())
        except GrizzError as exc:
            typer.echo(f"grizz: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None
        found = conv.get_conversation(db, wanted)
        messages = conv.messages_of(db, found.id) if found else []
    if json_output:
        typer.echo(
            json.dumps([m.to_dict() for m in messages], ensure_ascii=False, indent=2)
        )
        return
    if not messages:
        typer.echo(f"No conversation on {wanted}.", err=True)
        raise typer.Exit(1)
    for m in messages:
        who = "You" if m.role == "user" else "Grizz"
        mark = "" if m.status == "complete" else f" ({m.status})"
        typer.echo(f"── {who} · {m.created_at[11:16]} UTC{mark}\n{m.content}\n")


def search(
    query: Annotated[list[str], typer.Argument(help="Words to look for.")],
    limit: Annotated[int, typer.Option("--limit", "-n")] = 20,
    json_output: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Search all days and Grizz's notes."""
    from grizz_tui.store.search import marked
    from grizz_tui.store.search import search as run_search

    with _database() as db:
        hits = run_search(db, " ".join(query), limit=limit)
    if json_output:
        rows = [{**h.__dict__, "snippet": marked(h.snippet)} for h in hits]
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        for h in hits:
            where = f"note {h.id[:8]}" if h.kind == "memory" else f"{h.day} {h.role}"
            typer.echo(f"{where:18s}  {' '.join(marked(h.snippet).split())}")
    if not hits:
        if not json_output:
            typer.echo(f"Nothing found for '{' '.join(query)}'.", err=True)
        raise typer.Exit(1)


def export(
    day: Annotated[
        str | None, typer.Option("--day", "-d", help="Only this day.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="md or json.")] = "md",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to a file.")
    ] = None,
) -> None:
    """Export conversations (and memory, for a full JSON export)."""
    from grizz_core.days import parse_day
    from grizz_tui.store.transfer import export_data, export_markdown

    if fmt not in ("md", "json"):
        typer.echo("grizz: --format must be md or json.", err=True)
        raise typer.Exit(2)
    with _database() as db:
        wanted = _checked(lambda: parse_day(day, _tz())) if day else None
        if fmt == "json":
            text = (
                json.dumps(export_data(db, day=wanted), ensure_ascii=False, indent=2)
                + "\n"
            )
        else:
            text = export_markdown(db, day=wanted)
        if wanted is not None and not text_has_messages(db, wanted):
            typer.echo(f"grizz: no conversation on {wanted}.", err=True)
            raise typer.Exit(1)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"Wrote {output}.", err=True)


def import_(
    file: Annotated[Path, typer.Argument(help="A JSON export (- for stdin).")],
) -> None:
    """Import a JSON export; rows already present are kept."""
    from grizz_tui.store.transfer import import_data

    def load() -> Any:
        try:
            raw = (
                sys.stdin.read()
                if str(file) == "-"
                else file.read_text(encoding="utf-8")
            )
            return json.loads(raw)
        except FileNotFoundError:
            raise UsageError(f"No such file: {file}.") from None
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise UsageError(f"{file} is not a JSON export ({exc}).") from None

    data = _checked(load)
    with _database() as db:
        counts = _checked(lambda: import_data(db, data))
    typer.echo(
        f"Imported {plural(counts['conversations'], 'day')}, "
        f"{plural(counts['messages'], 'message')}, {plural(counts['memory'], 'note')}."
    )


def text_has_messages(db: Any, day: str) -> bool:
    """Whether `day` has a conversation with at least one message to export."""
    from grizz_tui.store import conversations as conv

    found = conv.get_conversation(db, day)
    return found is not None and bool(conv.messages_of(db, found.id))


def _checked(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except GrizzError as exc:
        typer.echo(f"grizz: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None


def register(app: typer.Typer) -> None:
    app.add_typer(memory_app, name="memory")
    app.command()(history)
    app.command()(search)
    app.command()(export)
    app.command("import")(import_)
