"""What "today" is: the calendar day in the user's chosen time zone."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from grizz_core.errors import ConfigError


def resolve_tz(name: str) -> dt.tzinfo:
    """The `ZoneInfo` for an IANA name, or this machine's zone for ''."""
    if not name:
        local = dt.datetime.now().astimezone().tzinfo
        assert local is not None
        return local
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"Unknown time zone '{name}'; use an IANA name such as Europe/Berlin."
        ) from None


def tz_name(name: str) -> str:
    """A storable name for the zone: the IANA name, or the local abbreviation."""
    return name or str(resolve_tz(name))


def today(tz: str = "", *, now: dt.datetime | None = None) -> str:
    """Today's date (`YYYY-MM-DD`) in time zone `tz`."""
    moment = now or dt.datetime.now(dt.UTC)
    return moment.astimezone(resolve_tz(tz)).date().isoformat()


def parse_day(text: str, tz: str = "") -> str:
    """Accept `YYYY-MM-DD`, `today` or `yesterday`; return `YYYY-MM-DD`."""
    word = text.strip().lower()
    if word in {"today", ""}:
        return today(tz)
    if word == "yesterday":
        day = dt.date.fromisoformat(today(tz)) - dt.timedelta(days=1)
        return day.isoformat()
    try:
        return dt.date.fromisoformat(word).isoformat()
    except ValueError:
        from grizz_core.errors import UsageError

        raise UsageError(
            f"'{text}' is not a day; use YYYY-MM-DD, today or yesterday."
        ) from None
