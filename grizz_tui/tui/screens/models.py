"""Choosing a model from the endpoint's list (`GET /v1/models`).

`fetch_models` asks the endpoint the settings describe; `ModelScreen` (the
palette's "Choose model") shows the list and dismisses with the chosen id
("" when closed or when the endpoint lists none). Saving is the caller's
(`config set model`).

Must not import: the app; httpx or the core's providers at module level (they
are imported when the list is asked for).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from grizz_core.errors import GrizzError

if TYPE_CHECKING:
    from textual.app import ComposeResult

    from grizz_tui.config import Settings


async def fetch_models(settings: Settings, api_key: str | None = None) -> list[str]:
    """The model ids the endpoint of `settings` lists ([] if none, or local).

    `api_key` is a key typed but not saved yet; without it the stored one is used.

    Raises:
        GrizzError: the endpoint is unreachable or refuses the key.
    """
    if settings.provider == "local":
        return []
    from grizz_core.providers.openai_compat import OpenAICompatProvider

    if api_key is None:
        from grizz_tui import secrets

        found = secrets.get_key(settings.api_key_name)
        api_key = found.value if found else None
    provider = OpenAICompatProvider(
        base_url=settings.base_url,
        model=settings.model,
        api_key=api_key,
        timeout=min(settings.timeout, 10.0),
        max_retries=0,
    )
    try:
        return await provider.models()
    finally:
        await provider.aclose()


def save_model(model: str) -> str:
    """`config set model MODEL`; the one-line note to show.

    Raises:
        GrizzError: the config file cannot be written.
    """
    from grizz_tui import config

    config.set_value("model", model)
    if config.load_settings().sources.get("model") in ("env", "flag"):
        return f"Saved {model}, but GRIZZ_MODEL is set in the environment, which wins."
    return f"Saved: {model} answers from now on."


def model_options(models: list[str], current: str) -> list[Option]:
    """One option per model, the current one marked."""
    return [Option(f"{m}  (current)" if m == current else m, id=m) for m in models]


class ModelScreen(ModalScreen[str]):
    """The endpoint's models; Enter chooses one, Esc closes."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss('')", "Close")]

    def __init__(self, settings: Settings) -> None:
        super().__init__(classes="dialog-screen")
        self.settings = settings

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog -tall"):
            yield Static(
                "Choose a model (Enter chooses, Esc closes)", classes="dialog-title"
            )
            yield Static(self._asking(), id="models-status", classes="dialog-text")
            yield OptionList(id="models")

    def _asking(self) -> str:
        if self.settings.provider == "local":
            return "The built-in model answers; choose an endpoint in setup first."
        return f"Asking {self.settings.base_url} for its models…"

    def on_mount(self) -> None:
        self.query_one(OptionList).display = False
        if self.settings.provider != "local":
            self.load()

    @work(exclusive=True, group="models", exit_on_error=False)
    async def load(self) -> None:
        status = self.query_one("#models-status", Static)
        try:
            models = await fetch_models(self.settings)
        except GrizzError as exc:
            status.update(f"✗ {exc}")
            return
        if not models:
            status.update(
                f"{self.settings.base_url} does not list its models: type the"
                " name in setup (or `grizz config set model NAME`)."
            )
            return
        status.update(f"{len(models)} at {self.settings.base_url}")
        options = self.query_one(OptionList)
        options.add_options(model_options(models, self.settings.model))
        options.display = True
        if self.settings.model in models:
            options.highlighted = models.index(self.settings.model)
        options.focus()

    @on(OptionList.OptionSelected, "#models")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id or "")
