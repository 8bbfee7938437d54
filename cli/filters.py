"""``--filter key=value`` arguments, as the docker CLI sends them (``ps``, ``images``, ``events``)."""

from __future__ import annotations

from .client import CliError

__all__ = ["parse_filters"]


def parse_filters(values: list[str] | None) -> dict[str, dict[str, bool]] | None:
    """``-f name=web -f status=exited`` -> ``{"name": {"web": true}, ...}`` (docker's form)."""
    if not values:
        return None
    filters: dict[str, dict[str, bool]] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"bad format of filter (expected name=value): {item}")
        filters.setdefault(key.strip().lower(), {})[value] = True
    return filters
