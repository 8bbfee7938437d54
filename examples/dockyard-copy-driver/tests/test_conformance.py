"""What a third-party driver ships: dockyard's storage conformance suite, run against this driver."""

import pytest

pytest.register_assert_rewrite("dockyard.testing.conformance")

from dockyard.testing.conformance import StorageDriverSuite  # noqa: E402

pytest_plugins = ["dockyard.testing.conformance"]


class TestExampleDriver(StorageDriverSuite):
    driver_name = "example"  # built from the dockyard.storage entry point, exactly as the daemon does
