"""``wait_for`` and ``holds_for``: the one way tests wait (shared with the shipped conformance suites)."""

from dockyard.testing.waiting import holds_for, wait_for

__all__ = ["holds_for", "wait_for"]
