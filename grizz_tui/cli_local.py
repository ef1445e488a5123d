"""`grizz local info`: which offline models are installed, and what one costs.

Without `--load` it only looks (no llama_cpp import): the runtime, each model
of the catalogue with its licence and whether its package is installed, and
which one the settings select. With `--load` it loads the selected model the
way a reply would and reports load time, the memory estimate it was checked
against, and the process's resident memory after loading.

Must not import at module level: llama_cpp, textual.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from grizz_core.errors import GrizzError

local_app = typer.Typer(help="The built-in offline model.", no_args_is_help=True)


@local_app.command("info")
def info(
    load: Annotated[
        bool, typer.Option("--load", help="Load the model and report its memory.")
    ] = False,
) -> None:
    """Show the local models, their licences, and (with --load) memory use."""
    from grizz_core import paths
    from grizz_core.providers.local import models as local_models
    from grizz_tui.config import load_settings

    try:
        settings = load_settings()
        runtime = "installed" if local_models.runtime_installed() else "missing"
        typer.echo(f"runtime:  llama-cpp-python {runtime}")
        typer.echo(f"selected: local.model = {settings.local_model}")
        typer.echo(f"cache:    {paths.models_dir()}")
        for spec in local_models.CATALOGUE:
            state = "installed" if local_models.part_paths(spec) else "not installed"
            typer.echo(
                f"- {spec.name}: {spec.title}, {spec.size / (1 << 20):.0f} MiB, "
                f"{spec.licence}; package {spec.package} ({state})"
            )
        if load:
            _load(settings)
    except GrizzError as exc:
        typer.echo(f"grizz: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None


def _load(settings) -> None:  # type: ignore[no-untyped-def]
    from grizz_core.providers.local.provider import LocalProvider

    async def run() -> list[tuple[str, str]]:
        provider = LocalProvider(
            model=settings.local_model,
            n_ctx=settings.local_n_ctx,
            threads=settings.local_threads,
        )
        try:
            return (await provider.load()).describe()
        finally:
            await provider.aclose()

    for name, value in asyncio.run(run()):
        typer.echo(f"{name + ':':24s}{value}")


def register(app: typer.Typer) -> None:
    app.add_typer(local_app, name="local")
