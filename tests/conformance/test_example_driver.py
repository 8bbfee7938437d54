"""The storage conformance suite against the out-of-tree example driver in
examples/dockyard-copy-driver, found only through its dockyard.storage entry
point.  Skipped unless that package is installed (CI: pip install ./examples/dockyard-copy-driver)."""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("dockyard.testing.conformance")

from dockyard.drivers import available  # noqa: E402
from dockyard.testing.conformance import StorageDriverSuite  # noqa: E402

pytest_plugins = ["dockyard.testing.conformance"]

pytestmark = pytest.mark.skipif(
    "example" not in available("storage"),
    reason="the example storage driver is not installed: pip install ./examples/dockyard-copy-driver")


class TestExampleDriver(StorageDriverSuite):
    driver_name = "example"

    def test_registered_only_by_entry_point(self) -> None:
        from importlib.metadata import entry_points

        found = [ep for ep in entry_points(group="dockyard.storage") if ep.name == "example"]
        assert [ep.value for ep in found] == ["dockyard_example_driver.driver:ExampleDriver"]
        assert found[0].dist is not None and found[0].dist.name == "dockyard-example-driver"
