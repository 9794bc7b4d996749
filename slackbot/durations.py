"""TTL durations as people type them: `30m`, `4h`, `2h30m`, `1d12h`."""

import re
from datetime import timedelta

_DURATION = re.compile(r"(?:(?P<d>\d{1,4})d)?(?:(?P<h>\d{1,5})h)?(?:(?P<m>\d{1,6})m)?")
DURATION_HINT = "a number with units d, h and m, largest first, such as 30m, 4h, 2h30m or 1d12h"


def parse_duration(text: str) -> timedelta:
    """Parse a compound duration; raises ValueError with a message fit for users."""
    match = _DURATION.fullmatch(text.strip().lower())
    if not text.strip() or match is None:
        raise ValueError(f"`{text}` is not a duration; use {DURATION_HINT}")
    days, hours, minutes = (int(match.group(unit) or 0) for unit in "dhm")
    value = timedelta(days=days, hours=hours, minutes=minutes)
    if not value:
        # Zero is never a lifetime; accepting it would quietly turn into the default.
        raise ValueError(f"`{text}` is zero; use {DURATION_HINT}")
    return value


def format_duration(value: timedelta) -> str:
    """The inverse of parse_duration, normalised (`90m` -> `1h30m`)."""
    minutes = int(value.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    return "".join(parts) or "0m"


def format_remaining(value: timedelta) -> str:
    """Time left as people read it: `3h 12m`, `2d 4h`, `under a minute`."""
    minutes = int(value.total_seconds() // 60)
    if minutes < 1:
        return "under a minute"
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    return " ".join(parts[:2])
