"""Shared fixtures: markers for what a test needs from the host."""

from __future__ import annotations

import os
import shutil

import pytest


def pytest_collection_modifyitems(config, items):
    missing = []
    if os.geteuid() != 0:
        missing.append(("requires_root", "needs root"))
    if not shutil.which("lxc-start") or not _has_liblxc():
        missing.append(("requires_lxc", "needs Debian's lxc (lxc-start, liblxc.so.1)"))
    if not shutil.which("conmon") or not (shutil.which("runc") or shutil.which("crun")):
        if os.environ.get("CI"):
            raise pytest.UsageError("CI needs conmon and runc/crun for the requires_oci tests (contrib/setup.sh)")
        missing.append(("requires_oci", "needs Debian's conmon and runc or crun"))
    for item in items:
        for marker, reason in missing:
            if item.get_closest_marker(marker):
                item.add_marker(pytest.mark.skip(reason=reason))


def _has_liblxc() -> bool:
    import ctypes.util

    return ctypes.util.find_library("lxc") is not None


def pytest_sessionfinish(session, exitstatus):
    """Test daemons keep their bridge across restarts (as docker0 does); remove them all at the end."""
    import sys

    module = sys.modules.get("tests.integration.conftest")
    if module is not None:
        module.remove_all_bridges()

