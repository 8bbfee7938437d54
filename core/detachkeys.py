"""Docker's detach-key syntax (``--detach-keys``): ``ctrl-p,ctrl-q``, ``a``, ``ctrl-@``..."""

from __future__ import annotations

from dockyard.errors import InvalidParameter

__all__ = ["DEFAULT", "detach_keys"]

DEFAULT = "ctrl-p,ctrl-q"


def detach_keys(spec: str | None) -> bytes:
    """Docker's detach-key syntax (``ctrl-p,ctrl-q``, ``a``, ``ctrl-@``...) as bytes."""
    keys = bytearray()
    for key in (spec or "ctrl-p,ctrl-q").split(","):
        key = key.strip()
        if key.startswith("ctrl-") and len(key) == 6:
            char = key[5]
            code = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}.get(char)
            if code is None and char.isalpha():
                code = ord(char.lower()) - ord("a") + 1
            if code is None:
                raise InvalidParameter(f"Invalid detach keys ({spec}) provided")
            keys.append(code)
        elif len(key) == 1:
            keys.append(ord(key))
        else:
            raise InvalidParameter(f"Invalid detach keys ({spec}) provided")
    return bytes(keys)
