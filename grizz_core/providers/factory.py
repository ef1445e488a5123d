"""Building a provider from `ProviderSettings`: the one place that decides who
answers.

1. `provider = "local"` → the built-in local model.
2. Otherwise the OpenAI-compatible endpoint at `base_url` — except on a fresh
   install: when `provider` was never set, `base_url` is a hosted API that
   needs a key, no key was found, and the `local` extra is installed, Grizz
   falls back to the local model so it talks out of the box, offline.
   A key, a `base_url` (Ollama, …) or `provider = "openai"` wins;
   `local.fallback = false` turns the fallback off.

Where the key comes from is the app's business (the device's keyring, the
server's settings); it arrives here as `api_key`.

Must not import: keyring, the companion, a store, the UI, the server.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from grizz_core.errors import ConfigError
from grizz_core.providers.base import Provider
from grizz_core.providers.openai_compat import OpenAICompatProvider
from grizz_core.settings import ProviderSettings

OPENAI_HOSTS = ("api.openai.com",)


def needs_key(base_url: str) -> bool:
    """True for hosted APIs that cannot work without a key."""
    host = urlsplit(base_url).hostname or ""
    return host in OPENAI_HOSTS


def make_provider(
    settings: ProviderSettings,
    *,
    api_key: str | None,
    missing_key: str = "",
    max_connections: int = 0,
    http: str = "httpx",
) -> Provider:
    """The provider `settings` select (module doc).

    Args:
        settings: the provider settings.
        api_key: the endpoint's key, or None when there is none.
        missing_key: the sentence for a hosted API and no key (how to set one).
        max_connections: the HTTP pool size of an OpenAI-compatible provider (a
            server worker keeps one kept-alive connection per concurrent reply).
        http: its transport, "httpx" (devices) or "aiohttp" (server workers).
            The local model ignores both.

    Raises:
        ConfigError: no key for a provider that needs one (exit code 3).
    """
    if settings.provider == "local":
        return make_local_provider(settings)
    if api_key is None and needs_key(settings.base_url):
        if local_fallback(settings):
            return make_local_provider(settings)
        raise ConfigError(missing_key or f"No API key for {settings.base_url}.")
    return OpenAICompatProvider(
        base_url=settings.base_url,
        model=settings.model,
        api_key=api_key,
        timeout=settings.timeout,
        max_retries=settings.max_retries,
        retry_delay=settings.retry_delay,
        max_tokens=settings.max_tokens,
        temperature=settings.temperature if settings.temperature >= 0 else None,
        max_connections=max_connections,
        http=http,
    )


def local_fallback(settings: ProviderSettings) -> bool:
    """Use the local model although `provider` was not set to it (module doc)."""
    if not settings.local_fallback or settings.provider_chosen:
        return False
    return local_ready()


def local_ready() -> bool:
    """The `local` extra is installed (checked without importing llama_cpp)."""
    from grizz_core.providers.local import models

    return models.available()


def make_local_provider(settings: ProviderSettings) -> Provider:
    from grizz_core.providers.local.provider import LocalProvider

    return LocalProvider(
        model=settings.local_model,
        n_ctx=settings.local_n_ctx,
        threads=settings.local_threads,
        max_tokens=settings.max_tokens,
        temperature=settings.temperature if settings.temperature >= 0 else None,
    )
