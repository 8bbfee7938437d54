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
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("dockyard-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"dockyard"}, tops
    for module in ("dockyard/hookspecs.py", "dockyard/cli/main.py", "dockyard/plugins/storage_vfs/driver.py",
                   "dockyard/plugins/exec_lxc/lxc_runtime.c", "dockyard/daemon/app.py"):
        assert module in names, module
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[dockyard.storage]" in text and "vfs = dockyard.plugins.storage_vfs.driver:VfsDriver" in text
    assert "dockyard = dockyard.cli.main:main" in text


def test_package_version_is_the_distribution_version():
    """``dockyard.__version__`` (what the daemon and ``dockyard version`` report) is pyproject's version."""
    from importlib import metadata

    import dockyard

    assert dockyard.__version__ == metadata.version("dockyard")
