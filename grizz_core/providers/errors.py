"""Every failure of an OpenAI-compatible endpoint as one sentence.

HTTP statuses, transport failures, a malformed or cut-off stream: each
becomes a `ProviderError` (or `AuthError` for a rejected key) whose message a
user can act on. `reason()` is the short cause both transports put in their
`classify()` answers.

Must not import: httpx, aiohttp, the transports or the client.
"""

from __future__ import annotations

import json
from typing import Any

from grizz_core.errors import AuthError, GrizzError, ProviderError
from grizz_core.providers.transport import Failure, Response

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
"""HTTP statuses retried (with backoff) before the first token."""


def reason(exc: BaseException) -> str:
    """An exception as a short cause for the middle of a sentence."""
    text = str(exc) or type(exc).__name__
    if "Connection refused" in text or "ConnectError" in text:
        return "connection refused"
    return " ".join(text.split())[:160]


def message_of(error: Any) -> str:
    """An error object (`{"message": …}`, a string, …) as one short line."""
    if isinstance(error, dict):
        error = error.get("message") or error.get("error") or json.dumps(error)
    return " ".join(str(error).split())[:200]


def error_detail(response: Response) -> str:
    """What an error response says about itself, or "" (an HTML page: nothing)."""
    try:
        data = response.json()
    except ValueError:
        text = response.text.strip()
        return " ".join(text.split())[:200] if text and "<" not in text[:1] else ""
    if isinstance(data, dict) and "error" in data:
        return message_of(data["error"])
    if isinstance(data, dict) and "detail" in data:
        return message_of(data["detail"])
    return ""


def http_error(
    response: Response, *, base_url: str, host: str, model: str, max_retries: int
) -> GrizzError:
    """The error for an HTTP status ≥ 400 (its body already read).

    Args:
        response: the error response.
        base_url: the endpoint (…/v1), named when the path was not found.
        host: the endpoint's host, named in most sentences.
        model: the model asked for, named when the server says it is unknown.
        max_retries: how many retries a retryable status already had.
    """
    status = response.status_code
    detail = error_detail(response)
    suffix = f": {detail}" if detail else ""
    if status in (401, 403):
        what = "rejected the API key" if status == 401 else "refused access"
        return AuthError(
            f"The provider at {host} {what} (HTTP {status}){suffix}. "
            "Set a valid key with `grizz key set` or OPENAI_API_KEY."
        )
    if status == 404:
        if "model" in detail.lower():
            return ProviderError(
                f"Model '{model}' was not found at {host} (HTTP 404){suffix}.",
                status=status,
            )
        return ProviderError(
            f"{base_url}/chat/completions was not found (HTTP 404); "
            "base_url usually ends in /v1.",
            status=status,
        )
    if status == 429:
        return ProviderError(
            f"Rate limited by {host} (HTTP 429) after {max_retries} retries{suffix}.",
            status=status,
            retryable=True,
        )
    if status in RETRY_STATUSES:
        return ProviderError(
            f"The provider at {host} failed (HTTP {status}) after "
            f"{max_retries} retries{suffix}.",
            status=status,
            retryable=True,
        )
    return ProviderError(
        f"The provider at {host} rejected the request (HTTP {status}){suffix}.",
        status=status,
    )


def wire_error(
    kind: Failure, cause: str, *, base_url: str, host: str, timeout: float
) -> ProviderError:
    """The error for a transport failure `kind` with its short `cause`."""
    if kind == "connect":
        return ProviderError(
            f"Could not reach {base_url} ({cause}); "
            "is the server running and base_url right?",
            retryable=True,
        )
    if kind == "timeout":
        return ProviderError(
            f"The provider at {host} did not answer within {timeout:g} s.",
            retryable=True,
        )
    if kind == "broken":
        return ProviderError(
            f"The connection to {host} broke mid-reply ({cause}).",
            retryable=True,
        )
    return ProviderError(f"Request to {host} failed: {cause}.")


def malformed(host: str, what: str) -> ProviderError:
    """The reply from `host` was not what the protocol says (`what`)."""
    return ProviderError(f"The provider at {host} sent a malformed reply ({what}).")


def failed_mid_reply(host: str, error: Any) -> ProviderError:
    """The stream carried an error object instead of the next chunk."""
    return ProviderError(
        f"The provider at {host} failed mid-reply: {message_of(error)}."
    )


def closed_early(host: str) -> ProviderError:
    """The stream ended with neither `[DONE]` nor a finish reason."""
    return ProviderError(f"The connection to {host} closed before the reply finished.")
