"""Errors a user can meet, each carrying one clear sentence and an exit code.

Every expected failure becomes a `GrizzError` subclass before it reaches the
CLI or the app, which print `str(error)` and nothing else: no traceback.

Must not import anything from Grizz or any third-party package.
"""

from __future__ import annotations


class GrizzError(Exception):
    """Base class: `message` is one sentence a user can act on."""

    exit_code: int = 1
    """Process exit status for `grizz ask` and the other commands."""

    def __init__(self, message: str, *, title: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.title = title or type(self).__name__.removesuffix("Error") or "Error"

    def __str__(self) -> str:
        return self.message


class UsageError(GrizzError):
    """The command line or its input was wrong (exit 2)."""

    exit_code = 2


class ConfigError(GrizzError):
    """Configuration is missing, unreadable or invalid (exit 3)."""

    exit_code = 3


class AuthError(GrizzError):
    """The provider or server rejected our credentials (exit 3)."""

    exit_code = 3


class ProviderError(GrizzError):
    """The model provider failed: network, HTTP error, bad stream (exit 1)."""

    exit_code = 1

    def __init__(
        self, message: str, *, status: int | None = None, retryable: bool = False
    ) -> None:
        super().__init__(message, title="Provider")
        self.status = status
        self.retryable = retryable


class StoreError(GrizzError):
    """The local database is unusable: corrupt, not SQLite, locked (exit 1)."""

    exit_code = 1


class ProtocolError(GrizzError):
    """A wire frame was malformed or not allowed (sync client and server)."""

    exit_code = 1

    def __init__(self, message: str, *, code: str = "bad_frame") -> None:
        super().__init__(message, title="Protocol")
        self.code = code
