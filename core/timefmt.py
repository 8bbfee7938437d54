"""Time as the Engine API spells it (RFC 3339), and Docker's human durations.

The one home of timestamp formatting and parsing for the daemon, the drivers,
the registry server and the CLI.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone

__all__ = [
    "NEVER",
    "go_rfc3339nano",
    "human_duration",
    "iso",
    "iso_now",
    "iso_ns",
    "parse_duration",
    "parse_iso",
    "parse_timestamp",
    "to_unix",
]

NEVER = "0001-01-01T00:00:00Z"


def iso_ns(ns: int, digits: int = 9) -> str:
    """RFC 3339 in UTC with a Z and a fixed number of fraction digits (0: whole seconds).

    Nine digits is what Docker writes for times it formats itself (``RFC3339NanoFixed``).
    """
    seconds, frac = divmod(ns, 1_000_000_000)
    base = datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    if digits <= 0:
        return base + "Z"
    return f"{base}.{frac:09d}"[: len(base) + 1 + digits] + "Z"


def iso(ts: float | None = None, digits: int = 9) -> str:
    """:func:`iso_ns` of unix seconds (now when None).

    A float carries microseconds at best for today's dates, so that is where it is rounded.
    """
    return iso_ns(time.time_ns() if ts is None else round(ts * 1_000_000) * 1000, digits)


def iso_now() -> str:
    return iso()


def go_rfc3339nano(ns: int) -> str:
    """Go's ``time.RFC3339Nano`` (how a ``time.Time`` marshals to JSON) of unix nanoseconds:
    trailing zeros of the fraction trimmed."""
    text = iso_ns(ns)
    return text[:-1].rstrip("0").rstrip(".") + "Z"


_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2})?)(?:\.(\d+))?)?"
    r"(Z|[+-]\d{2}:?\d{2})?$",
    re.IGNORECASE,
)


def parse_iso(value: str) -> float:
    """Unix seconds of an RFC 3339 time (any fraction, ``Z`` or an offset; a date alone is its
    midnight); 0 for empty text and Docker's zero time.  Raises ValueError for anything else."""
    if not value or value.startswith("0001-01-01"):
        return 0.0
    match = _RFC3339.match(value.strip())
    if match is None:
        raise ValueError(f"not an RFC 3339 time: {value!r}")
    day, clock, fraction, zone = match.groups()
    clock = clock or "00:00:00"
    if clock.count(":") == 1:
        clock += ":00"
    offset = "+00:00" if zone is None or zone.upper() == "Z" else zone
    if ":" not in offset:
        offset = offset[:3] + ":" + offset[3:]
    seconds = datetime.fromisoformat(f"{day}T{clock}{offset}").timestamp()
    return seconds + (float("0." + fraction) if fraction else 0.0)


def to_utc(value: str) -> str:
    """The same instant in UTC with a ``Z``, its fraction digits kept as they are
    (``2024-05-01T12:00:00.123456789+02:00`` -> ``2024-05-01T10:00:00.123456789Z``):
    for timestamps written with an offset (conmon's logs).  Raises ValueError."""
    match = _RFC3339.match(value.strip())
    if match is None or match.group(2) is None:
        raise ValueError(f"not an RFC 3339 time: {value!r}")
    day, clock, fraction, zone = match.groups()
    if clock.count(":") == 1:
        clock += ":00"
    offset = "+00:00" if zone is None or zone.upper() == "Z" else zone
    if ":" not in offset:
        offset = offset[:3] + ":" + offset[3:]
    utc = datetime.fromisoformat(f"{day}T{clock}{offset}").astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


def to_unix(value: str) -> int:
    return int(parse_iso(value))


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,
    "\u03bcs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_duration(value: str) -> float:
    """Seconds of a Go duration (``1h30m``, ``10s``, ``1.5h``, ``-2m``, ``0``); ValueError otherwise."""
    text = value.strip()
    sign = -1.0 if text.startswith("-") else 1.0
    text = text.lstrip("+-")
    if text == "0":
        return 0.0
    total, position = 0.0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if not text or position != len(text):
        raise ValueError(f"time: invalid duration {value!r}")
    return sign * total


def parse_timestamp(value: str, now: float) -> float:
    """Unix seconds of a time as ``docker events --since``, ``logs --until`` and prune's ``until``
    take it (moby ``GetTimestamp``): a Go duration back from ``now``, an RFC 3339 time or date
    (without a zone: the daemon's local one), or unix seconds with an optional fraction."""
    text = value.strip()
    if text != "0":
        try:
            return now - parse_duration(text)
        except ValueError:
            pass
    if "-" in text:
        try:
            if re.search(r"(?:[zZ]|[+-]\d{2}:?\d{2})$", text) or text.count("-") == 3:
                return parse_iso(text)
            day, _, clock = text.partition("T")
            clock = clock or "00:00:00"
            clock += ":00" * max(0, 2 - clock.count(":"))
            return datetime.fromisoformat(f"{day}T{clock}").timestamp()  # local time, as Docker
        except ValueError:
            raise ValueError(f"failed to parse value as time or duration: {value!r}") from None
    seconds, _, fraction = text.partition(".")
    if not seconds.isdigit() or (fraction and not fraction.isdigit()):
        raise ValueError(f"failed to parse value as time or duration: {value!r}")
    return int(seconds) + (float("0." + fraction) if fraction else 0.0)


def human_duration(seconds: float) -> str:
    """go-units ``HumanDuration``."""
    secs = int(seconds)
    if secs < 1:
        return "Less than a second"
    if secs == 1:
        return "1 second"
    if secs < 60:
        return f"{secs} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"
