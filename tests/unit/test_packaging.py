"""A plain wheel installs one namespace: dockyard, dockyard.cli, dockyard.plugins.*."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wheel_layout(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("dockyard-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"dockyard"}, tops
    for module in (
        "dockyard/hookspecs.py",
        "dockyard/cli/main.py",
        "dockyard/plugins/storage_vfs/driver.py",
        "dockyard/plugins/exec_lxc/lxc_runtime.c",
        "dockyard/daemon/app.py",
    ):
        assert module in names, module
    assert not [n for n in names if n.endswith(".md")], "process notes do not ship"
    assert "dockyard/py.typed" in names and "dockyard/seccomp_default.json" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[dockyard.storage]" in text and "vfs = dockyard.plugins.storage_vfs.driver:VfsDriver" in text
    assert "dockyard = dockyard.cli.main:main" in text


def test_the_pytest_plugin_gives_the_suites_options_without_p(pytester):
    """Third parties pass the conformance options with no ``-p``: pytest loads dockyard's plugin
    through the ``pytest11`` entry point."""
    from importlib.metadata import entry_points

    assert [ep.value for ep in entry_points(group="pytest11") if ep.name == "dockyard"] == ["dockyard.testing.plugin"]
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--dockyard-storage-driver",
        "vfs",
        "--dockyard-exec-driver",
        "lxc",
        "--require-exec-capability",
        "all",
        "--require-network-capability",
        "all",
    )
    result.assert_outcomes(passed=1)


def test_package_version_is_the_distribution_version():
    """``dockyard.__version__`` (what the daemon and ``dockyard version`` report) is pyproject's version."""
    from importlib import metadata

    import dockyard

    assert dockyard.__version__ == metadata.version("dockyard")
