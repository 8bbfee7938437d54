"""The network conformance suite against the built-in ``none`` driver."""

from __future__ import annotations


import pytest

pytest.register_assert_rewrite("dockyard.testing.network_conformance")

from dockyard.plugins.net_none.driver import NoneNetworkDriver  # noqa: E402
from dockyard.testing.network_conformance import NetworkCapabilities, NetworkDriverSuite  # noqa: E402

pytest_plugins = ["dockyard.testing.network_conformance"]
pytestmark = pytest.mark.requires_root


class TestNoneDriver(NetworkDriverSuite):
    @pytest.fixture
    def driver_factory(self):
        def make(root):
            return NoneNetworkDriver(root, {}), lambda: None

        return make

    @pytest.fixture
    def capabilities(self):
        return NetworkCapabilities(modes=["none", "host"])
