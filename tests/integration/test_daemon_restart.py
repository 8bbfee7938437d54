"""A daemon killed with SIGKILL comes back: records intact, running containers kept."""

from __future__ import annotations

import json
import shutil
import signal

import pytest

from tests.helpers.daemon import busybox_rootfs_tar, start_daemon
from tests.helpers.waiting import wait_for

pytestmark = [pytest.mark.requires_root, pytest.mark.requires_lxc, pytest.mark.integration]


def test_sigkill_and_restart(tmp_path):
    d = start_daemon(tmp_path)
    try:
        assert d.dockyard("import", "-", "busybox", input=busybox_rootfs_tar()).returncode == 0
        assert d.docker("run", "--name", "done", "busybox", "sh", "-c", "exit 9").returncode == 9
        cid = (
            d.docker(
                "run",
                "-d",
                "--name",
                "alive",
                "busybox",
                "sh",
                "-c",
                "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done",
            )
            .stdout.decode()
            .strip()
        )
        short = d.docker("run", "-d", "--name", "short", "busybox", "sh", "-c", "sleep 1; echo bye; exit 4")
        assert short.returncode == 0
        short_log = (
            d.root / "data" / "containers" / (cid_short := short.stdout.decode().strip()) / f"{cid_short}-json.log"
        )
        d.stop(signal.SIGKILL)
        # "short" exits while no daemon is there (its shim keeps writing the log)
        assert wait_for(lambda: short_log.exists() and "bye" in short_log.read_text(), timeout=10)
        d = start_daemon(tmp_path)
        ps = wait_for(lambda: (text := d.docker("ps", "-a").stdout.decode()).count("Exited") == 2 and text)
        assert ps and "Exited (9)" in ps and "Exited (4)" in ps, ps
        state = json.loads(d.docker("inspect", "alive").stdout)[0]["State"]
        assert state["Running"] is True, state
        before = d.docker("logs", "alive").stdout.decode().count("tick")
        assert wait_for(lambda: d.docker("logs", "alive").stdout.decode().count("tick") > before)  # still logging
        assert d.docker("stop", "-t", "1", "alive").returncode == 0
        assert d.docker("wait", cid).stdout.decode().strip() == "137"
        # a clean stop (SIGTERM) and a second start see the same store
        assert d.stop() == 0
        d = start_daemon(tmp_path)
        assert "Exited (137)" in d.docker("ps", "-a", "--filter", "name=alive").stdout.decode()
    finally:
        for name in ("alive", "short", "done"):
            d.docker("rm", "-f", name)
        d.stop()
        shutil.rmtree(tmp_path / "data", ignore_errors=True)


def test_second_daemon_on_same_root_is_refused(tmp_path):
    import subprocess
    import sys

    d = start_daemon(tmp_path)
    try:
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "dockyard.daemon",
                "-H",
                f"unix://{tmp_path}/two.sock",
                "--data-root",
                str(tmp_path / "data"),
                "--storage-driver",
                "vfs",
            ],
            capture_output=True,
            timeout=30,
        )
        assert second.returncode != 0
        assert "another dockyard daemon" in second.stderr.decode()
    finally:
        d.stop()


def test_unknown_driver_names_the_available_ones(tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dockyard.daemon",
            "-H",
            f"unix://{tmp_path}/x.sock",
            "--data-root",
            str(tmp_path / "data"),
            "--storage-driver",
            "zfs",
        ],
        capture_output=True,
        timeout=30,
    )
    assert result.returncode != 0
    err = result.stderr.decode()
    assert "zfs" in err and "Available:" in err and "vfs" in err
