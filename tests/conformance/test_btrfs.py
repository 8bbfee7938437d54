"""The storage conformance suite against the btrfs driver.

``TestBtrfs`` formats a loopback btrfs in the test's temporary directory and
runs the driver on it, as on a real btrfs data root (containerd's
``btrfs_test.go``); ``TestBtrfsLoopback`` leaves the root on the host's file
system, so the driver makes and mounts its own image.  Both always unmount
and free their loop devices, and fail a test that leaves a mount behind.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import ClassVar

import pytest

pytest.register_assert_rewrite("dockyard.testing.conformance")

from dockyard import drivers
from dockyard.plugins.storage_btrfs.driver import BtrfsDriver
from dockyard.plugins.storage_overlay import kernel
from dockyard.testing.conformance import StorageDriverSuite
from tests.helpers.waiting import wait_for

pytest_plugins = ["dockyard.testing.conformance"]

pytestmark = [
    pytest.mark.requires_root,
    pytest.mark.requires_btrfs_progs,
]


def _detach_leftovers(directory: Path) -> list[str]:
    """Unmount whatever is still mounted below ``directory``; return what was."""
    left = kernel.mounts_under(str(directory))
    for point, _ in left:
        kernel.umount(point)
    return [point for point, _ in left]


def _loop_devices_of(image: Path, settle: float = 3.0) -> list[str]:
    """Loop devices still backed by ``image``, after giving autoclear (asynchronous) time to act."""

    def backing() -> list[str]:
        out = subprocess.run(["losetup", "-j", str(image)], capture_output=True, text=True, check=False).stdout
        return [line.split(":")[0] for line in out.splitlines() if line]

    left = [backing()]

    def gone() -> bool:
        left[0] = backing()
        return not left[0]

    wait_for(gone, timeout=settle, interval=0.05)
    return left[0]


class TestBtrfs(StorageDriverSuite):
    """The driver on a btrfs data root (a loopback btrfs made by the test)."""

    @pytest.fixture
    def driver_factory(self, storage_root: Path):
        image = storage_root.parent / "btrfs-root.img"
        with open(image, "wb") as f:
            f.truncate(8 << 30)
        subprocess.run(["mkfs.btrfs", "-q", "-f", str(image)], check=True, capture_output=True)
        subprocess.run(["mount", "-o", "loop", str(image), str(storage_root)], check=True, capture_output=True)
        driver = None
        try:
            driver = BtrfsDriver(storage_root, {})
            assert not driver.loopback
        finally:
            if driver is None:
                _detach_leftovers(storage_root)

        def cleanup() -> None:
            try:
                driver.storage_cleanup()
            finally:
                subprocess.run(["umount", str(storage_root)], capture_output=True, check=False)
                stray = _detach_leftovers(storage_root)
                for dev in _loop_devices_of(image):
                    subprocess.run(["losetup", "-d", dev], capture_output=True, check=False)
                image.unlink(missing_ok=True)
                assert not stray, f"mounts left behind: {stray}"

        return driver, cleanup

    def reopen(self, config, driver, root):
        return BtrfsDriver(root, {})

    def test_auto_selected_on_a_btrfs_root(self, driver, storage_root: Path) -> None:
        assert BtrfsDriver.auto_selectable(storage_root)
        assert drivers._auto_selectable("storage", "btrfs", storage_root)


class TestBtrfsLoopback(StorageDriverSuite):
    """The driver on a non-btrfs data root: it makes, mounts and unmounts its own image."""

    driver_name = "btrfs"
    driver_options: ClassVar[dict] = {"size": "8G"}

    @pytest.fixture
    def driver_factory(self, request: pytest.FixtureRequest, storage_root: Path):
        driver = self.open_driver(request.config, storage_root)
        assert driver.loopback and driver.image.is_file()

        def cleanup() -> None:
            try:
                driver.storage_cleanup()
            finally:
                stray = _detach_leftovers(storage_root)
                loops = _loop_devices_of(driver.image)
                for dev in loops:
                    subprocess.run(["losetup", "-d", dev], capture_output=True, check=False)
                assert not stray, f"mounts left behind: {stray}"
                assert not loops, f"loop devices left behind: {loops}"

        return driver, cleanup

    def test_not_auto_selected_off_btrfs(self, driver, storage_root: Path) -> None:
        """It would make a loopback image: only chosen when named (moby does the same)."""
        assert not drivers._auto_selectable("storage", "btrfs", storage_root)
        assert not BtrfsDriver.auto_selectable()  # a caller that does not say where: not btrfs

    def test_status_names_the_loopback(self, storage) -> None:
        status = dict(storage.status())
        assert status["Backing Filesystem"].startswith("btrfs (loopback image on ")
        assert status["Loopback File"].endswith("btrfs.img")

    def test_cleanup_unmounts_and_construction_remounts(self, driver, storage_root: Path) -> None:
        driver.storage_create_layer("a" * 64, None)
        driver.storage_cleanup()
        assert not kernel.is_mountpoint(str(driver.home))
        again = BtrfsDriver(storage_root, {})
        try:
            assert kernel.is_mountpoint(str(driver.home))
            assert again.storage_exists("a" * 64)
        finally:
            again.storage_cleanup()


@pytest.mark.parametrize("style", ["zero-argument", "root"])
def test_auto_selectable_forms(monkeypatch, tmp_path: Path, style: str) -> None:
    """choose() passes the data root to auto_selectable(root) and still calls the older
    zero-argument form; a driver refusing automatic selection is skipped for the next one."""
    seen = []

    class ZeroArg:
        @classmethod
        def auto_selectable(cls) -> bool:
            seen.append(())
            return False

    class WithRoot:
        @classmethod
        def auto_selectable(cls, root: Path | None = None) -> bool:
            seen.append((root,))
            return False

    class Plain:
        pass

    plugins = {"first": ZeroArg if style == "zero-argument" else WithRoot, "second": Plain}

    class Manager:
        def __getitem__(self, name):
            return type("Ext", (), {"plugin": plugins[name]})

    monkeypatch.setattr(drivers, "_extensions", lambda kind: Manager())
    monkeypatch.setattr(drivers, "available", lambda kind: {"first": None, "second": None})
    monkeypatch.setitem(drivers.PRIORITY, "storage", ["first", "second"])
    assert drivers.choose("storage", None, tmp_path) == "second"
    assert seen == ([()] if style == "zero-argument" else [(tmp_path,)])
