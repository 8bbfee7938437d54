"""Session-wide test hooks: requirements from ``requires_<name>`` markers, and bridge cleanup.

Helpers live in :mod:`tests.helpers`; conftest files hold fixtures and hooks only.
"""

from __future__ import annotations

import pytest

from tests.helpers.requirements import REQUIREMENTS, require

pytest_plugins = ["pytester"]  # tests of test machinery (tests/unit/test_requirements.py)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """``@pytest.mark.requires_<name>``: skip without it (fail in CI, see tests.helpers.requirements)."""
    for marker in item.iter_markers():
        name = marker.name.removeprefix("requires_")
        if marker.name.startswith("requires_") and name in REQUIREMENTS:
            require(name)


def pytest_sessionfinish(session, exitstatus):
    """Test daemons keep their bridge across restarts (as docker0 does); remove them all at the end."""
    import sys

    module = sys.modules.get("tests.helpers.daemon")
    if module is not None:
        module.remove_all_bridges()
