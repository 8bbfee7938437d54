"""The storage conformance suite against the out-of-tree example driver in
examples/dockyard-copy-driver, found only through its dockyard.storage entry
point: pip install ./examples/dockyard-copy-driver (contrib/test.sh does)."""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("dockyard.testing.conformance")

from dockyard.testing.conformance import StorageDriverSuite  # noqa: E402

pytest_plugins = ["dockyard.testing.conformance"]

pytestmark = pytest.mark.requires_example_driver


class TestExampleDriver(StorageDriverSuite):
    driver_name = "example"

    def test_registered_only_by_entry_point(self) -> None:
        from importlib.metadata import entry_points

        found = [ep for ep in entry_points(group="dockyard.storage") if ep.name == "example"]
        assert [ep.value for ep in found] == ["dockyard_example_driver.driver:ExampleDriver"]
        assert found[0].dist is not None and found[0].dist.name == "dockyard-example-driver"
