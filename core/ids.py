"""IDs and container names, the way Docker spells them (image references: :mod:`dockyard.reference`)."""

from __future__ import annotations

import hashlib
import os
import random
import re

from dockyard.errors import InvalidParameter

# \Z, not $: "$" would accept a trailing newline
HEX64 = re.compile(r"^[0-9a-f]{64}\Z")
NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+\Z")
#: a local volume's name: one path component (never "/etc"), as Docker's local driver
VOLUME_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")


def new_id() -> str:
    """A random 64-hex ID; never all digits (Docker avoids IDs that parse as numbers)."""
    while True:
        candidate = hashlib.sha256(os.urandom(32)).hexdigest()
        if not candidate[:12].isdigit():
            return candidate


def short(full_id: str) -> str:
    return full_id.removeprefix("sha256:")[:12]


def check_name(name: str) -> str:
    """Validate a container name and return it without its leading slash."""
    if not NAME.match(name):
        raise InvalidParameter(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name.lstrip("/")


_ADJECTIVES = [
    "admiring",
    "brave",
    "calm",
    "eager",
    "focused",
    "gallant",
    "happy",
    "jolly",
    "keen",
    "lucid",
    "modest",
    "nifty",
    "quirky",
    "serene",
    "tender",
    "vibrant",
    "wizardly",
    "zealous",
]
_SURNAMES = [
    "babbage",
    "curie",
    "darwin",
    "einstein",
    "feynman",
    "hopper",
    "kepler",
    "lovelace",
    "meitner",
    "noether",
    "pasteur",
    "ritchie",
    "shannon",
    "thompson",
    "turing",
    "wozniak",
]


def random_name() -> str:
    return f"{random.choice(_ADJECTIVES)}_{random.choice(_SURNAMES)}"
