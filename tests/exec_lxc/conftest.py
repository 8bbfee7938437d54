"""Fixtures for the exec_lxc driver tests (helpers: :mod:`tests.helpers.lxc`): real LXC, as root, no mocks.

Every test gets its own data root (``tmp_path``), its own busybox rootfs and
unique 64-hex container ids; whatever a test leaves running is killed and
deleted in the fixture's finalizer.
"""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import pytest

from dockyard.models.runtime import RuntimeSpec
from dockyard.rootfs import mount_plan
from tests.helpers.lxc import build_rootfs, cleanup_driver, new_id


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    return build_rootfs(tmp_path / "rootfs")


@pytest.fixture
def lxc_root(tmp_path: Path) -> Path:
    return tmp_path / "data" / "exec" / "lxc"


@pytest.fixture
def driver(lxc_root: Path):
    from dockyard.plugins.exec_lxc.driver import LxcDriver

    LxcDriver.check_supported()
    drv = LxcDriver(lxc_root, {})
    yield drv
    cleanup_driver(drv)


@pytest.fixture
def netns():
    """A fresh network namespace (bind-mounted under /run/netns) with lo up."""
    name = "dylxc-" + secrets.token_hex(4)
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield Path("/run/netns") / name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


@pytest.fixture
def make_spec(rootfs: Path, tmp_path: Path, netns: Path):
    """Build a RuntimeSpec with a unique id; defaults: busybox rootfs, the test netns."""

    def make(args, **kw) -> RuntimeSpec:
        cid = kw.pop("container_id", None) or new_id()
        kw.setdefault("rootfs", rootfs)
        kw.setdefault("log_path", tmp_path / "logs" / f"{cid}-json.log")
        kw.setdefault("netns", netns)
        if kw.get("binds"):  # as the core does: mount points made and resolved inside the rootfs
            kw["binds"] = mount_plan(kw["rootfs"], kw["binds"])
        return RuntimeSpec(container_id=cid, args=list(args), **kw)

    return make
