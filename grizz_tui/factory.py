"""The device's provider and session, built from its `Settings`.

`grizz ask`, the app and the tests all come through here. The decision of
who answers is `grizz_core.providers.factory`'s; this module adds what only a
device has: the key from `OPENAI_API_KEY`, the OS keyring or the 0600 file.

Must not import: textual, rich, the store.
"""

from __future__ import annotations

from grizz_core.companion.ports import ChatStore
from grizz_core.companion.session import ChatSession, make_session_for
from grizz_core.providers.base import Provider
from grizz_core.providers.factory import local_fallback, local_ready, needs_key
from grizz_core.providers.factory import make_provider as build_provider
from grizz_tui.config import Settings

__all__ = [
    "local_fallback",
    "local_ready",
    "make_provider",
    "make_session",
    "needs_key",
]


def make_provider(
    settings: Settings, *, max_connections: int = 0, http: str = "httpx"
) -> Provider:
    """The provider `settings` select, with the device's stored key.

    Raises:
        ConfigError: no key for a provider that needs one (exit code 3).
    """
    from grizz_tui import secrets

    found = (
        secrets.get_key(settings.api_key_name) if settings.provider != "local" else None
    )
    return build_provider(
        settings,
        api_key=found.value if found else None,
        missing_key=(
            f"No API key for {settings.base_url}. Set OPENAI_API_KEY, run "
            "`grizz key set`, point base_url at a local server "
            "(Ollama: `grizz config set base_url http://localhost:11434/v1`), "
            "or install grizz[local] to talk offline."
        ),
        max_connections=max_connections,
        http=http,
    )


def make_session(
    settings: Settings, store: ChatStore, provider: Provider
) -> ChatSession:
    """A session in the user's time zone whose context fits the provider."""
    return make_session_for(settings, store, provider, tz=settings.timezone)
