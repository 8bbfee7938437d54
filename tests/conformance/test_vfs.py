"""The storage conformance suite against vfs, directly and through the core's naive diff."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.register_assert_rewrite("dockyard.testing.conformance")

from dockyard.plugins.storage_vfs.driver import VfsDriver  # noqa: E402
from dockyard.testing.conformance import StorageDriverSuite  # noqa: E402

pytest_plugins = ["dockyard.testing.conformance"]


class TestVfs(StorageDriverSuite):
    driver_name = "vfs"


class _VfsWithoutDiff(VfsDriver):
    """vfs with its optional diff hooks hidden, so dockyard.storage_fallbacks.NaiveDiff serves them."""

    storage_diff = storage_changes = storage_diff_size = None


class TestVfsNaiveDiff(StorageDriverSuite):
    @pytest.fixture
    def driver_factory(self, storage_root: Path):
        driver = _VfsWithoutDiff(storage_root, {})
        return driver, driver.storage_cleanup

    def reopen(self, config, driver, root):
        return _VfsWithoutDiff(root, {})
