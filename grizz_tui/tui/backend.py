"""The app's collaborators, built lazily so the first frame needs none of them.

`Backend` owns the settings, the local database and the `ChatSession`. The
store (sqlite-utils, ~0.1 s of imports) is opened just after the first paint;
the provider (httpx) is built on first send, or in the background once the
day is on screen. Nothing here touches the network until a message is sent or
the setup screen tests a connection.

Must not import: textual; httpx/openai/the store at module level (start-up
cost, checked by tests/tui/test_startup.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from grizz_core.errors import ConfigError, GrizzError
from grizz_tui.config import Settings, load_settings

if TYPE_CHECKING:
    from grizz_core.companion.session import ChatSession
    from grizz_core.domain import Message
    from grizz_core.providers.base import Provider
    from grizz_tui.store.db import Database
    from grizz_tui.store.local import LocalChatStore


class Backend:
    """Settings, database and session for one app run."""

    def __init__(self, settings: Settings, *, db_path: Path | None = None) -> None:
        self.settings = settings
        self.db_path = db_path
        self.recovered = 0
        """Replies left `streaming` by a dead process, marked interrupted at open."""
        self._db: Database | None = None
        self._store: LocalChatStore | None = None
        self._provider: Provider | None = None
        self._session: ChatSession | None = None
        self.answers_locally: bool | None = None
        """The built-in model answers (None: not known before the warm-up)."""

    # -- store ---------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self._db is not None

    def open_store(self) -> None:
        """Open (and migrate) the database; recover orphaned replies.

        Safe to call from a thread: the store's connection is opened with
        `check_same_thread=False`, and nothing else uses it until this returns.

        Raises:
            StoreError: the database file is unusable (it is left untouched).
        """
        if self._db is not None:
            return
        from grizz_tui.store.conversations import recover_orphans
        from grizz_tui.store.db import open_database
        from grizz_tui.store.local import LocalChatStore

        db = open_database(self.db_path, check=True)  # damaged: nothing written
        self.recovered = recover_orphans(db)
        self._db = db
        self._store = LocalChatStore(db)

    @property
    def db(self) -> Database:
        if self._db is None:
            self.open_store()
        assert self._db is not None
        return self._db

    @property
    def store(self) -> LocalChatStore:
        if self._store is None:
            self.open_store()
        assert self._store is not None
        return self._store

    # -- what the chat screen reads and changes ---------------------------------
    def read_day(self, day: str) -> tuple[list[Message], dict[str, list[str]]]:
        """`day`'s messages, and the attachment names of each user message."""
        from grizz_tui.store import conversations as conv

        db = self.db
        found = conv.get_conversation(db, day)
        messages = conv.messages_of(db, found.id) if found is not None else []
        files = {
            m.id: names
            for m in messages
            if str(m.role) == "user"
            and (names := [a.name for a in conv.attachments_of(db, m.id)])
        }
        return messages, files

    def delete_message(self, message_id: str) -> None:
        """Tombstone one message."""
        from grizz_tui.store.conversations import delete_message

        delete_message(self.db, message_id)

    def memory_change_stands(self, tool: str, memory_id: str) -> bool:
        """Whether a `remember` (the note is live) or a `forget` (it is still
        deleted) is still what the store holds: the user may have changed the
        note meanwhile, and then there is nothing left to undo."""
        from grizz_tui.store import memory

        live = memory.get_memory(self.db, memory_id) is not None
        return live if tool == "remember" else not live

    def undo_memory_change(self, tool: str, memory_id: str) -> None:
        """Undo a `remember` (delete the note) or a `forget` (restore it)."""
        from grizz_tui.store import memory

        if tool == "remember":
            memory.delete_memory(self.db, memory_id)
        else:
            memory.restore_memory(self.db, memory_id)

    # -- provider and session --------------------------------------------------
    def provider_label(self, *, via_server: bool = False) -> str:
        """Who answers, for the status bar, without building the provider:
        `server · host` while replies come from the sync server, `model @
        host`, or `local · <model>` for the built-in model, chosen or the
        fresh-install fallback (known once `uses_local_model()` ran).
        """
        from urllib.parse import urlsplit

        settings = self.settings
        if via_server and settings.server_url:
            host = urlsplit(settings.server_url).netloc or settings.server_url
            return f"server · {host}"
        if settings.provider == "local" or self.answers_locally:
            return f"local · {self.local_model_name()}"
        host = urlsplit(settings.base_url).netloc or settings.base_url
        return f"{settings.model} @ {host}"

    def local_model_name(self) -> str:
        """The built-in model's name (`auto`: the first installed one)."""
        choice = self.settings.local_model.strip() or "auto"
        if choice != "auto":
            return Path(choice).stem if choice.endswith(".gguf") else choice
        from grizz_core.providers.local import models

        ready = models.installed() or list(models.CATALOGUE)
        return ready[0].name

    def needs_setup(self) -> bool:
        """True when no provider can answer yet: a hosted API without a key,
        and no built-in local model to fall back to (see `core.setup`).

        Imports the core's setup module (httpx): call it after the first paint.
        """
        state = self._hosted_key()
        if state != "missing":
            return state == "unreadable"
        default = self.settings.sources.get("provider", "default") == "default"
        return not (default and local_provider_ready())

    def _hosted_key(self) -> str:
        """Whether a hosted API still lacks its key: "missing", "unreadable"
        (the key store failed), or "no" (the local model, a server that needs
        no key, or the key is stored). Imports the core's setup module."""
        if self.settings.provider == "local":
            return "no"
        from grizz_tui import factory as setup
        from grizz_tui import secrets

        if not setup.needs_key(self.settings.base_url):
            return "no"
        try:
            found = secrets.get_key(self.settings.api_key_name)
        except GrizzError:
            return "unreadable"
        return "no" if found is not None else "missing"

    def session(self) -> ChatSession:
        """The chat session, building the provider on first use.

        Raises:
            ConfigError: no key for a provider that needs one.
        """
        if self._session is None:
            from grizz_tui.factory import make_provider, make_session

            provider = self._provider or make_provider(self.settings)
            self._provider = provider
            self._session = make_session(self.settings, self.store, provider)
        return self._session

    def prepare_provider(self) -> None:
        """Build the provider ahead of the first send; call it in a thread.

        An HTTP client's TLS context costs ~40 ms, which on the first send
        would stall the screen. A provider that cannot be built (no key) is
        left to the send, which reports why.
        """
        if self._provider is not None:
            return
        from grizz_tui.factory import make_provider

        settings = self.settings
        try:
            provider = make_provider(settings)
        except GrizzError:
            return
        if self._provider is None and self.settings is settings:
            self._provider = provider

    def uses_local_model(self) -> bool:
        """True when `make_provider` picks the built-in local model: chosen
        explicitly, or the fresh-install fallback (see `core.setup`).

        Imports the core's setup module: call it after the first paint.
        """
        if self.settings.provider == "local":
            answer = True
        elif self._hosted_key() != "missing":
            answer = False
        else:
            from grizz_tui import factory as setup

            answer = setup.local_fallback(self.settings)
        self.answers_locally = answer
        return answer

    def model_pending(self) -> bool:
        """True when the provider has a model still to load (the local one).

        Builds the session (and provider) if needed.

        Raises:
            ConfigError: no key for a provider that needs one.
        """
        self.session()
        return self._provider is not None and self._provider.needs_loading

    async def load_model(self, progress: Callable[[str, float | None], None]) -> None:
        """Load the local provider's model in its worker thread (no-op otherwise).

        `progress(text, fraction)` is called from that thread.

        Raises:
            ConfigError: the `local` extra or its model is not installed.
            ProviderError: corrupt model file, not enough memory.
        """
        if self.model_pending() and self._provider is not None:
            await self._provider.load(progress)

    @staticmethod
    def import_core() -> None:
        """Import the core and provider (httpx) ahead of the first send; thread."""
        import grizz_tui.factory  # noqa: F401

    async def reload(self, settings: Settings | None = None) -> None:
        """Re-read the settings (after setup saved them) and drop the provider."""
        self.settings = settings or load_settings()
        self.answers_locally = None
        await self.close_provider()

    async def close_provider(self) -> None:
        provider, self._provider, self._session = self._provider, None, None
        if provider is not None:
            await provider.aclose()

    async def aclose(self) -> None:
        await self.close_provider()
        if self._db is not None:
            self._db.close()
            self._db = None
            self._store = None


def local_provider_ready() -> bool:
    """True when the built-in model's package (the `local` extra) is installed."""
    from grizz_tui import factory

    try:
        return factory.local_ready()
    except GrizzError:
        return False


async def check_connection(settings: Settings, api_key: str | None = None) -> str:
    """Ask the provider for a one-token reply; return a one-line success note.

    `api_key` is the key typed into the setup screen (not saved yet); without
    it the stored key is used, as `make_provider` would.

    Raises:
        GrizzError: with the provider's one-line reason (bad key, unknown
            model, unreachable host).
    """
    from grizz_core.providers.base import StreamEnd
    from grizz_core.providers.openai_compat import OpenAICompatProvider
    from grizz_tui.config import replace
    from grizz_tui.factory import make_provider

    probe = replace(
        settings, max_tokens=1, max_retries=0, timeout=min(settings.timeout, 20.0)
    )
    provider: Provider
    if api_key and probe.provider != "local":
        provider = OpenAICompatProvider(
            base_url=probe.base_url,
            model=probe.model,
            api_key=api_key,
            timeout=probe.timeout,
            max_retries=0,
            max_tokens=1,
        )
    else:
        provider = make_provider(probe)
    model = probe.model
    try:
        async for event in provider.stream(
            [{"role": "user", "content": "Say hi."}], stream=False
        ):
            if isinstance(event, StreamEnd) and event.model:
                model = event.model
    finally:
        await provider.aclose()
    return f"Connected: {model} answered."


__all__ = ["Backend", "ConfigError", "check_connection"]
