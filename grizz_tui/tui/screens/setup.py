"""First-run (and later) provider setup: choose who answers, test it, save it.

- OpenAI: an API key (saved with `secrets.set_key`: the OS keyring, or a 0600
  file, and the screen says which) and a model.
- An OpenAI-compatible server (Ollama, vLLM, llama.cpp server, LM Studio): a
  base URL, a model and an optional key.
- Local (built-in model; the `local` extra).

"Test" sends a one-token request; "Save" writes `config.set_value` and
dismisses with True. Nothing is saved until Save.

Must not import: httpx at module level (the check imports the core lazily).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Button, Input, OptionList, RadioButton, RadioSet, Static

from grizz_core.errors import GrizzError
from grizz_tui.config import DEFAULT_BASE_URL, SPEC_BY_KEY, Settings

if TYPE_CHECKING:
    from textual.app import ComposeResult

DEFAULT_MODEL: str = SPEC_BY_KEY["model"].default
"""The `model` setting's default (OpenAI's); never right for a local server."""
PRESETS = {
    "ollama": ("http://localhost:11434/v1", "llama3.2"),
    "lmstudio": ("http://localhost:1234/v1", ""),
    "llamacpp": ("http://localhost:8080/v1", ""),
    "vllm": ("http://localhost:8000/v1", ""),
}
INTRO = (
    "🐻 Hi! Before we talk, tell me where my thoughts come from.\n"
    "Nothing leaves this machine until you send a message."
)


class SetupScreen(Screen[bool]):
    """Choose and test the provider; dismiss(True) once saved."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "later", "Later"),
        Binding("ctrl+s", "save", "Save"),
        Binding("ctrl+l", "list_models", "List models", show=False),
    ]

    def __init__(
        self,
        settings: Settings,
        *,
        first_run: bool,
    ) -> None:
        super().__init__(id="setup")
        self.settings = settings
        self.first_run = first_run

    def compose(self) -> ComposeResult:
        s = self.settings
        compatible = s.provider != "local" and s.base_url != DEFAULT_BASE_URL
        with VerticalScroll(id="setup-body"):
            yield Static(INTRO if self.first_run else "🐻 Who answers", classes="title")
            with RadioSet(id="kind"):
                yield RadioButton(
                    "OpenAI (API key)",
                    id="openai",
                    value=s.provider != "local" and not compatible,
                )
                yield RadioButton(
                    "OpenAI-compatible server (Ollama, vLLM, llama.cpp, LM Studio)",
                    id="compatible",
                    value=compatible,
                )
                yield RadioButton(
                    Content("Local (built-in model, offline; needs grizz[local])"),
                    id="local",
                    value=s.provider == "local",
                )
            with Vertical(id="openai-fields", classes="fields"):
                yield Static(
                    "API key (stored in your OS keyring, or a file only you can read)"
                )
                yield Input(placeholder="sk-…", password=True, id="key")
            with Vertical(id="compatible-fields", classes="fields"):
                yield Static("Server URL (usually ends in /v1)")
                yield Input(
                    s.base_url if compatible else "",
                    placeholder=PRESETS["ollama"][0],
                    id="base-url",
                )
                with Horizontal(classes="presets"):
                    for name, label in (
                        ("ollama", "Ollama"),
                        ("lmstudio", "LM Studio"),
                        ("llamacpp", "llama.cpp"),
                        ("vllm", "vLLM"),
                    ):
                        yield Button(label, id=f"preset-{name}", compact=True)
                yield Static("API key (optional)")
                yield Input(
                    placeholder="only if your server needs one",
                    password=True,
                    id="compat-key",
                )
            yield Static("Model")
            yield Input(s.model, placeholder="gpt-4o-mini", id="model")
            models = OptionList(id="model-list")
            models.display = False  # filled by Test or ctrl+l when the endpoint lists
            yield models
            yield Static("", id="setup-result")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Test connection", id="test")
                yield Button("Save", id="save", variant="primary")
                yield Button("Later" if self.first_run else "Cancel", id="later")

    def on_mount(self) -> None:
        self._show_fields()
        self.query_one(RadioSet).focus()

    @property
    def kind(self) -> str:
        pressed = self.query_one(RadioSet).pressed_button
        return (pressed.id if pressed is not None else None) or "openai"

    @on(RadioSet.Changed)
    def _show_fields(self) -> None:
        kind = self.kind
        self.query_one("#openai-fields").display = kind == "openai"
        self.query_one("#compatible-fields").display = kind == "compatible"

    @on(Button.Pressed, ".presets Button")
    def _preset(self, event: Button.Pressed) -> None:
        url, model = PRESETS[(event.button.id or "").removeprefix("preset-")]
        self.query_one("#base-url", Input).value = url
        field = self.query_one("#model", Input)
        # A model the user typed stays; OpenAI's default or another preset's
        # model would be refused by this server, so it gives way (to nothing
        # when the server has no usual model: the user must name one).
        replaceable = {"", DEFAULT_MODEL, *(m for _, m in PRESETS.values())}
        if field.value.strip() in replaceable:
            field.value = model
            field.placeholder = model or "the model's name as your server lists it"

    def candidate(self, *, require_model: bool = True) -> tuple[Settings, str | None]:
        """The settings and key the form describes (validated, not saved).

        Raises:
            GrizzError: a required field is empty or malformed.
        """
        from grizz_tui.config import replace

        model = self.query_one("#model", Input).value.strip()
        if self.kind == "local":
            return replace(
                self.settings, provider="local", model=model or self.settings.model
            ), None
        if not model and require_model:
            raise GrizzError("Enter a model name (e.g. gpt-4o-mini, llama3.2).")
        if self.kind == "openai":
            key = self.query_one("#key", Input).value.strip() or None
            return replace(
                self.settings, provider="openai", base_url=DEFAULT_BASE_URL, model=model
            ), key
        url = self.query_one("#base-url", Input).value.strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise GrizzError("The server URL must start with http:// or https://.")
        key = self.query_one("#compat-key", Input).value.strip() or None
        return replace(self.settings, provider="openai", base_url=url, model=model), key

    def say(self, text: str, *, ok: bool) -> None:
        result = self.query_one("#setup-result", Static)
        result.update(Content(text))  # literal: `grizz[local]` is no markup
        result.set_class(ok, "-ok")
        result.set_class(not ok, "-bad")

    @on(Button.Pressed, "#test")
    @work(exclusive=True, group="setup-test", exit_on_error=False)
    async def action_test(self) -> None:
        from grizz_tui.tui.backend import check_connection

        try:
            settings, key = self.candidate()
            if settings.provider != "local" and key is None:
                key = self._stored_key(settings)
            self.say("Testing…", ok=True)
            self.say(await check_connection(settings, key), ok=True)
        except GrizzError as exc:
            self.say(f"✗ {exc}", ok=False)
            return
        await self._show_models(settings, key, quiet=True)

    @work(exclusive=True, group="setup-models", exit_on_error=False)
    async def action_list_models(self) -> None:
        """ctrl+l: the endpoint's models, listed under the model field."""
        try:
            settings, key = self.candidate(require_model=False)
        except GrizzError as exc:
            self.say(f"✗ {exc}", ok=False)
            return
        self.say("Asking for the models…", ok=True)
        await self._show_models(settings, key, quiet=False)

    async def _show_models(
        self, settings: Settings, key: str | None, *, quiet: bool
    ) -> None:
        from grizz_tui.tui.screens.models import fetch_models, model_options

        try:
            models = await fetch_models(settings, key)
        except GrizzError as exc:
            if not quiet:
                self.say(f"✗ {exc}", ok=False)
            return
        if not models:
            if not quiet:
                self.say("This endpoint does not list its models: type one.", ok=True)
            return
        listing = self.query_one("#model-list", OptionList)
        listing.clear_options()
        listing.add_options(model_options(models, settings.model))
        listing.display = True
        if not quiet:
            self.say(f"{len(models)} models: Enter on one chooses it.", ok=True)

    @on(OptionList.OptionSelected, "#model-list")
    def _model_chosen(self, event: OptionList.OptionSelected) -> None:
        self.query_one("#model", Input).value = event.option.id or ""
        self.query_one("#model", Input).focus()

    def _stored_key(self, settings: Settings) -> str | None:
        from grizz_tui import secrets

        found = secrets.get_key(settings.api_key_name)
        return found.value if found else None

    @on(Button.Pressed, "#save")
    def action_save(self) -> None:
        from grizz_tui import config, secrets
        from grizz_tui.factory import needs_key

        try:
            settings, key = self.candidate()
            if (
                settings.provider != "local"
                and needs_key(settings.base_url)
                and not (key or self._stored_key(settings))
            ):
                raise GrizzError("OpenAI needs an API key; paste it above.")
            notice = ""
            if key:
                _, notice = secrets.set_key(settings.api_key_name, key)
            config.set_value("provider", settings.provider)
            if settings.provider != "local":
                config.set_value("base_url", settings.base_url)
            config.set_value("model", settings.model)
        except GrizzError as exc:
            self.say(f"✗ {exc}", ok=False)
            return
        shadowed = [
            k
            for k in ("base_url", "model", "provider")
            if config.load_settings().sources.get(k) in ("env", "flag")
        ]
        if shadowed:
            notice += (
                f" Note: {', '.join(shadowed)} is set in the environment, which wins."
            )
        self.notify(("Saved. " + notice).strip(), title="Setup", markup=False)
        self.dismiss(True)

    @on(Button.Pressed, "#later")
    def action_later(self) -> None:
        self.dismiss(False)
