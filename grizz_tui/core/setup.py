"""Building the core's collaborators from `Settings`: the provider, the session.

The CLI, the app and the tests all come through here, so there is one place
that decides which provider answers and which key it uses.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from grizz_tui.config import Settings
from grizz_tui.core.provider import OpenAICompatProvider, Provider
from grizz_tui.core.session import ChatSession
from grizz_tui.errors import ConfigError

OPENAI_HOSTS = ("api.openai.com",)


def needs_key(base_url: str) -> bool:
    """True for hosted APIs that cannot work without a key."""
    host = urlsplit(base_url).hostname or ""
    return host in OPENAI_HOSTS


def make_provider(settings: Settings) -> Provider:
    """The provider `settings` select.

    Raises:
        ConfigError: no key for a provider that needs one (exit code 3).
    """
    from grizz_tui import secrets

    found = secrets.get_key(settings.api_key_name)
    if found is None and needs_key(settings.base_url):
        raise ConfigError(
            f"No API key for {settings.base_url}. Set OPENAI_API_KEY, run "
            "`grizz key set`, or point base_url at a local server "
            "(Ollama: `grizz config set base_url http://localhost:11434/v1`)."
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
    )


def make_session(settings: Settings, store, provider: Provider) -> ChatSession:  # type: ignore[no-untyped-def]
    return ChatSession(
        store,
        provider,
        tz=settings.timezone,
        context_tokens=settings.context_tokens,
        tools=settings.tools,
    )
