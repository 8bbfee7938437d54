"""The exec-driver conformance suite against exec_oci, once per OCI runtime (real conmon, root, busybox)."""

from __future__ import annotations


import pytest

pytest.register_assert_rewrite("dockyard.testing.exec_conformance")

from dockyard.testing.exec_conformance import ExecDriverSuite  # noqa: E402

pytest_plugins = ["dockyard.testing.exec_conformance"]

pytestmark = [pytest.mark.requires_root, pytest.mark.requires_oci]


class TestOciRunc(ExecDriverSuite):
    driver_name = "oci"
    driver_options = {"runtime": "runc"}


@pytest.mark.requires_crun
class TestOciCrun(ExecDriverSuite):
    driver_name = "oci"
    driver_options = {"runtime": "crun"}
