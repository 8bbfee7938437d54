"""Time in the Engine API's two spellings, and Docker's human durations."""

from __future__ import annotations

import time
from datetime import datetime, timezone

NEVER = "0001-01-01T00:00:00Z"


def iso(ts: float | None = None) -> str:
    """RFC3339Nano in UTC with a Z, as Docker writes it (nanosecond digits)."""
    ns = time.time_ns() if ts is None else int(ts * 1e9)
    seconds, frac = divmod(ns, 1_000_000_000)
    base = datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac:09d}Z"


def iso_now() -> str:
    return iso()


def parse_iso(value: str) -> float:
    """Unix seconds of an RFC3339(Nano) string; 0 for Docker's zero time."""
    if not value or value.startswith("0001-01-01"):
        return 0.0
    value = value.rstrip("Z")
    frac = 0.0
    if "." in value:
        value, digits = value.split(".", 1)
        frac = float("0." + digits) if digits else 0.0
    dt = datetime.strptime(value, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    return dt.timestamp() + frac


def to_unix(value: str) -> int:
    return int(parse_iso(value))


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
