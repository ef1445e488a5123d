"""Building the core's collaborators from `Settings`: the provider, the session.

The CLI, the app and the tests all come through here, so there is one place
that decides which provider answers and which key it uses:

1. `provider = "local"` (flag, env, config) → the built-in local model.
2. Otherwise the OpenAI-compatible endpoint at `base_url` — except on a fresh
   install: when `provider` was never set, `base_url` is a hosted API that
   needs a key, no key is stored, and the `local` extra is installed, Grizz
   falls back to the local model so it talks out of the box, offline.
   Setting a key, a `base_url` (Ollama, …) or `provider = "openai"` wins;
   `local.fallback = false` turns the fallback off.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from grizz_tui.config import Settings
from grizz_tui.core.persona import PERSONA
from grizz_tui.core.provider import OpenAICompatProvider, Provider
from grizz_tui.core.session import ChatSession
from grizz_tui.errors import ConfigError

OPENAI_HOSTS = ("api.openai.com",)


def needs_key(base_url: str) -> bool:
    """True for hosted APIs that cannot work without a key."""
    host = urlsplit(base_url).hostname or ""
    return host in OPENAI_HOSTS


def make_provider(
    settings: Settings, *, max_connections: int = 0, http: str = "httpx"
) -> Provider:
    """The provider `settings` select.

    `max_connections` sizes the HTTP pool of an OpenAI-compatible provider (a
    server worker keeps one kept-alive connection per concurrent reply), and
    `http` picks its transport: "httpx" or "aiohttp" (the server worker's;
    see provider.py). The local model ignores both.

    Raises:
        ConfigError: no key for a provider that needs one (exit code 3).
    """
    from grizz_tui import secrets

    if settings.provider == "local":
        return make_local_provider(settings)
    found = secrets.get_key(settings.api_key_name)
    if found is None and needs_key(settings.base_url):
        if local_fallback(settings):
            return make_local_provider(settings)
        raise ConfigError(
            f"No API key for {settings.base_url}. Set OPENAI_API_KEY, run "
            "`grizz key set`, point base_url at a local server "
            "(Ollama: `grizz config set base_url http://localhost:11434/v1`), "
            "or install grizz[local] to talk offline."
        )
    return OpenAICompatProvider(
        base_url=settings.base_url,
        model=settings.model,
        api_key=found.value if found else None,
        timeout=settings.timeout,
        max_retries=settings.max_retries,
        retry_delay=settings.retry_delay,
        max_tokens=settings.max_tokens,
        temperature=settings.temperature if settings.temperature >= 0 else None,
        max_connections=max_connections,
        http=http,
    )


def local_fallback(settings: Settings) -> bool:
    """Use the local model although `provider` was not set to it (module doc)."""
    if not settings.local_fallback:
        return False
    if settings.sources.get("provider", "default") != "default":
        return False
    return local_ready()


def local_ready() -> bool:
    """The `local` extra is installed (checked without importing llama_cpp)."""
    from grizz_tui.core import local_models

    return local_models.available()


def make_local_provider(settings: Settings) -> Provider:
    from grizz_tui.core.local_provider import LocalProvider

    return LocalProvider(
        model=settings.local_model,
        n_ctx=settings.local_n_ctx,
        threads=settings.local_threads,
        max_tokens=settings.max_tokens,
        temperature=settings.temperature if settings.temperature >= 0 else None,
    )


def make_session(settings: Settings, store, provider: Provider) -> ChatSession:  # type: ignore[no-untyped-def]
    """A session whose context fits the provider (a local model's window and
    persona, when the provider declares them)."""
    budget = settings.context_tokens
    window = getattr(provider, "prompt_budget", None)
    if isinstance(window, int) and window > 0:
        budget = min(budget, window)
    persona = getattr(provider, "persona", None)
    return ChatSession(
        store,
        provider,
        tz=settings.timezone,
        context_tokens=budget,
        tools=settings.tools,
        persona=persona if isinstance(persona, str) and persona else PERSONA,
    )
