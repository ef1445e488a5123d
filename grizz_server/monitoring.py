"""Error monitoring: unexpected exceptions to Sentry, when `SENTRY_DSN` is set
and the `sentry` extra (sentry-sdk) is installed.

`init(process_name)` adds a logging handler: every `grizz_server` record of
level ERROR or above that carries an exception (`log.exception(...)`,
`exc_info=`) is reported, tagged with the process and, when the record has
them, the job and user ids. Nothing else leaves the server: no log message,
no exception text (it can quote a user's message or a provider's answer),
no local variables, breadcrumbs or request data; only the exception's type
and its stack of file/function/line. Without a DSN or without sentry-sdk it
does nothing.

Must not import: redis, websockets, the store, the core.
"""

from __future__ import annotations

import logging
import os
from typing import Any, cast

DSN_ENV = "SENTRY_DSN"
TAGS = {"job": "job_id", "user": "user_id"}
"""Log record fields reported as tags (field → tag)."""
_KEEP_FRAME = ("filename", "abs_path", "module", "function", "lineno", "in_app")


def init(process_name: str, environ: dict[str, str] | None = None) -> bool:
    """Start reporting when `SENTRY_DSN` is set and sentry-sdk is installed;
    whether it did."""
    env = os.environ if environ is None else environ
    dsn = env.get(DSN_ENV, "").strip()
    if not dsn:
        return False
    try:
        import sentry_sdk
    except ImportError:
        logging.getLogger(__name__).warning(
            "SENTRY_DSN is set but sentry-sdk is not installed "
            "(pip install 'grizz[sentry]'); errors are not reported"
        )
        return False
    sentry_sdk.init(
        dsn=dsn,
        default_integrations=False,  # no logging/breadcrumb/atexit hooks of its own
        integrations=[],
        auto_enabling_integrations=False,
        send_default_pii=False,
        include_local_variables=False,
        include_source_context=False,
        max_breadcrumbs=0,
        before_send=cast("Any", scrub),  # sentry's Event is a TypedDict
    )
    sentry_sdk.set_tag("process", process_name)
    handler = _Report(level=logging.ERROR)
    logging.getLogger().addHandler(handler)
    return True


def flush(timeout: float = 2.0) -> None:
    """Send what is queued (a process about to exit)."""
    try:
        import sentry_sdk
    except ImportError:
        return
    sentry_sdk.flush(timeout)


class _Report(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        if not record.exc_info or record.exc_info[1] is None:
            return
        import sentry_sdk

        with sentry_sdk.new_scope() as scope:
            for field, tag in TAGS.items():
                value = getattr(record, field, None)
                if value:
                    scope.set_tag(tag, str(value))
            scope.set_tag("logger", record.name)
            sentry_sdk.capture_exception(record.exc_info[1])


def scrub(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    """The event with nothing but exception types, frames and tags."""
    exceptions = event.get("exception", {}).get("values", [])
    for exc in exceptions:
        exc["value"] = ""  # the text may quote a message or a token
        exc.pop("mechanism", None)
        for frame in exc.get("stacktrace", {}).get("frames", []):
            for key in list(frame):
                if key not in _KEEP_FRAME:
                    del frame[key]
    kept = {
        "event_id",
        "timestamp",
        "platform",
        "level",
        "exception",
        "tags",
        "release",
        "environment",
        "sdk",
        "server_name",
    }
    return {k: v for k, v in event.items() if k in kept}
