"""``filters``, as every list and prune endpoint of the Engine API takes them.

One home for Docker's filter semantics (moby ``api/types/filters``): the query
value is JSON, ``{"key": {"value": true}}`` from the docker CLI or the older
``{"key": ["value"]}`` from docker-py; a key the endpoint does not know is a 400
``Invalid filter 'key'``.  The matching rules are moby's:

* :meth:`Filters.match` -- a value matches when it equals the source or, read as
  a regular expression, is found in it (so ``name=web`` matches ``/my-web-1``);
* :meth:`Filters.exact_match` -- equality only;
* :meth:`Filters.match_kv_list` -- ``label=key`` or ``label=key=value``; every
  value given must hold;
* :meth:`Filters.fuzzy_match` -- equality or prefix (IDs);

and for every one of them a key that is not given matches everything.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping

from dockyard.errors import InvalidParameter
from dockyard.timefmt import parse_timestamp

__all__ = ["Filters"]


class Filters:
    """Parsed ``filters``: each key with the set of values given for it."""

    def __init__(self, fields: Mapping[str, Iterable[str]] | None = None) -> None:
        self.fields: dict[str, list[str]] = {k: list(dict.fromkeys(v)) for k, v in (fields or {}).items()}

    @classmethod
    def parse(cls, raw: str | None) -> "Filters":
        """The ``filters`` query value; empty or absent is no filter.  Raises InvalidParameter."""
        if not raw:
            return cls()
        try:
            data = json.loads(raw)
        except ValueError:
            raise InvalidParameter(f"invalid filters: {raw!r} is not JSON") from None
        if not isinstance(data, dict):
            raise InvalidParameter(f"invalid filters: {raw!r} is not a JSON object")
        fields: dict[str, list[str]] = {}
        for key, value in data.items():
            if isinstance(value, dict):  # {"value": true}: the docker CLI's form
                fields[key] = [str(k) for k, on in value.items() if on]
            elif isinstance(value, list):  # ["value"]: the legacy form docker-py sends
                fields[key] = [str(v) for v in value]
            elif isinstance(value, (str, int, float, bool)):
                fields[key] = [str(value).lower() if isinstance(value, bool) else str(value)]
            else:
                raise InvalidParameter(f"invalid filters: the value of {key!r} must be an object or a list")
        return cls(fields)

    def __bool__(self) -> bool:
        return bool(self.fields)

    def __repr__(self) -> str:
        return f"Filters({self.fields!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Filters) and self.fields == other.fields

    def keys(self) -> list[str]:
        return list(self.fields)

    def contains(self, key: str) -> bool:
        return key in self.fields

    def get(self, key: str) -> list[str]:
        return list(self.fields.get(key, []))

    def validate(self, accepted: Iterable[str]) -> None:
        """Refuse a key the endpoint does not know, as moby's ``Args.Validate`` does."""
        allowed = set(accepted)
        for key in self.fields:
            if key not in allowed:
                raise InvalidParameter(f"Invalid filter '{key}'")

    # -- matching (moby's rules) ------------------------------------------------------------
    def exact_match(self, key: str, source: str) -> bool:
        values = self.fields.get(key)
        return not values or source in values

    def match(self, key: str, source: str) -> bool:
        values = self.fields.get(key)
        if not values or source in values:
            return True
        for pattern in values:
            try:
                if re.search(pattern, source):
                    return True
            except re.error:
                continue
        return False

    def fuzzy_match(self, key: str, source: str) -> bool:
        values = self.fields.get(key)
        return not values or any(source == v or source.startswith(v) for v in values)

    def match_kv_list(self, key: str, labels: Mapping[str, str] | None) -> bool:
        values = self.fields.get(key)
        if not values:
            return True
        labels = labels or {}
        for value in values:
            name, eq, wanted = value.partition("=")
            if name not in labels or (eq and labels[name] != wanted):
                return False
        return True

    def match_labels(self, labels: Mapping[str, str] | None) -> bool:
        """Prune's label rule: every ``label`` holds, and the ``label!`` ones do not all hold."""
        if not self.match_kv_list("label", labels):
            return False
        return not (self.contains("label!") and labels and self.match_kv_list("label!", labels))

    # -- typed values -----------------------------------------------------------------------
    def bool_value(self, key: str) -> bool | None:
        """``dangling=true|false|1|0`` and the like: None when absent; refuses other values and
        contradicting values."""
        values = self.fields.get(key)
        if not values:
            return None
        seen = set()
        for value in values:
            lowered = value.lower()
            if lowered in ("true", "1"):
                seen.add(True)
            elif lowered in ("false", "0"):
                seen.add(False)
            else:
                raise InvalidParameter(f"Invalid filter '{key}={value}'")
        if len(seen) > 1:
            raise InvalidParameter(f"Invalid filter '{key}': conflicting values {values}")
        return seen.pop()

    def one_of(self, key: str, allowed: Iterable[str], message: str | None = None) -> None:
        """Refuse a value of ``key`` that is not in ``allowed``."""
        allowed = set(allowed)
        for value in self.fields.get(key, []):
            if value not in allowed:
                raise InvalidParameter(message.format(value) if message else f"Invalid filter '{key}={value}'")

    def until(self, now: float | None = None) -> float | None:
        """The ``until`` of a prune (a unix time, an RFC 3339 date or a Go duration back from now);
        None when absent.  Only one value is allowed, as in moby."""
        values = self.fields.get("until")
        if not values:
            return None
        if len(values) > 1:
            raise InvalidParameter("more than one until filter specified")
        try:
            return parse_timestamp(values[0], time.time() if now is None else now)
        except ValueError as exc:
            raise InvalidParameter(str(exc)) from None
