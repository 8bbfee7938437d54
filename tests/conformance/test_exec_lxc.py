"""The exec-driver conformance suite against exec_lxc (real LXC: root, liblxc, busybox)."""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("dockyard.testing.exec_conformance")

from dockyard.testing.exec_conformance import ExecDriverSuite  # noqa: E402

pytest_plugins = ["dockyard.testing.exec_conformance"]

pytestmark = [pytest.mark.requires_root, pytest.mark.requires_lxc]


class TestLxc(ExecDriverSuite):
    driver_name = "lxc"
