"""Waiting in tests: for a condition to become true, or to stay true.  Never a bare ``sleep``.

``wait_for`` polls until the predicate returns something truthy and returns it, or
returns the last (falsy) value at the timeout, so ``assert wait_for(...)`` reads
as the condition and fails as one.  ``holds_for`` is its negative: a condition
that must not change for a while (nothing restarts, a paused container stays
quiet), checked throughout rather than once at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

__all__ = ["holds_for", "wait_for"]


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02) -> T:
    """The first truthy value of ``predicate()``, or its last value after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def holds_for(predicate: Callable[[], object], duration: float, interval: float = 0.05) -> bool:
    """Whether ``predicate()`` stays truthy for ``duration`` seconds (False as soon as it is not)."""
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        if not predicate():
            return False
        time.sleep(interval)
    return bool(predicate())
