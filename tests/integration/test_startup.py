"""Every documented way to start the daemon (issue #10): each one leaves SIGPIPE ignored, so a
client that goes away mid-stream costs one connection, never the daemon.

* the console script ``dockyard daemon``: the ``daemon`` fixture every end-to-end module uses
  (checked in test_availability.py);
* ``python -m dockyard.daemon``;
* the systemd unit's ``ExecStart`` line (contrib/dockyard.service), run as systemd would;
* the sysvinit script (contrib/dockyard.init) through start-stop-daemon.

The machine-specific parts (the console script's path, the socket, the data root) are substituted;
the rest of each command line is taken from the file that documents it.
"""

from __future__ import annotations

import configparser
import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.daemon import (
    DOCKYARD,
    STORAGE_DRIVER,
    Daemon,
    busybox_rootfs_tar,
    remove_bridge,
    start_daemon,
    wait_until_up,
)
from tests.helpers.probes import ignores_sigpipe, leave_mid_stream, ping
from tests.helpers.waiting import wait_for

pytestmark = [pytest.mark.requires_root, pytest.mark.requires_lxc, pytest.mark.integration]

CONTRIB = Path(__file__).resolve().parents[2] / "contrib"


def survives_clients_leaving(d: Daemon, pid: int) -> None:
    """The issue's first reproduction in miniature: clients that leave while the daemon writes."""
    assert ignores_sigpipe(pid), "SIGPIPE must stay ignored in the daemon"
    result = d.dockyard("import", "-", "busybox:latest", input=busybox_rootfs_tar())
    assert result.returncode == 0, result.stderr.decode()
    for _ in range(3):  # `docker save busybox | head -c 1024`: the daemon writes into a closed socket
        leave_mid_stream(d.socket, "/images/get?names=busybox:latest")
    assert os.path.exists(f"/proc/{pid}"), "the daemon died when a client left mid-stream"
    assert ping(d.socket) < 5


def unit_exec_start(unit: Path) -> tuple[list[str], dict[str, str]]:
    """The ``ExecStart`` command and the ``Environment`` of a systemd unit."""
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(unit)
    service = parser["Service"]
    env = dict(item.split("=", 1) for item in shlex.split(service.get("Environment", "")))
    return shlex.split(service["ExecStart"]), env


def test_python_dash_m_with_log_defaults_from_a_config_file(tmp_path):
    """``python -m dockyard.daemon``, with daemon-wide log options in its config file."""
    config = tmp_path / "daemon.toml"
    config.write_text('[log-opts]\nmax-size = "2k"\nmax-file = 2\n')
    d = start_daemon(tmp_path, ("--config", str(config)), command=(sys.executable, "-m", "dockyard.daemon"))
    try:
        survives_clients_leaving(d, d.process.pid)
        run = d.docker(
            "run",
            "--name",
            "chatty",
            "busybox",
            "sh",
            "-c",
            "i=0; while [ $i -lt 200 ]; do echo line $i; i=$((i+1)); usleep 10000; done",
        )
        assert run.returncode == 0, run.stderr.decode()
        inspect = json.loads(d.docker("inspect", "chatty").stdout)[0]
        assert inspect["HostConfig"]["LogConfig"] == {
            "Type": "json-file",
            "Config": {"max-size": "2k", "max-file": "2"},
        }
        log = Path(inspect["LogPath"])
        assert log.exists() and Path(f"{log}.1").exists() and not Path(f"{log}.2").exists()
        lines = d.docker("logs", "chatty").stdout.decode().splitlines()
        assert lines and lines[-1] == "line 199"
        assert [int(x.split()[1]) for x in lines] == list(range(200 - len(lines), 200))  # no gap, no repeat
        d.docker("rm", "-f", "chatty")
        assert d.stop() == 0
    finally:
        d.stop(signal.SIGKILL)
        remove_bridge(tmp_path)


def test_the_systemd_units_exec_start(tmp_path):
    argv, env = unit_exec_start(CONTRIB / "dockyard.service")
    assert Path(argv[0]).name == "dockyard" and argv[1] == "daemon", argv
    command = [str(DOCKYARD)]  # the unit names the installed console script; this is the one here
    args = iter(argv[1:])
    for arg in args:
        if arg in ("-H", "--host"):
            next(args)  # the unit's socket is the system's: the test daemon gets its own
        else:
            command.append(arg)
    d = start_daemon(tmp_path, command=tuple(command), env={**os.environ, **env})
    try:
        survives_clients_leaving(d, d.process.pid)
        # KillMode=process: systemd stops the daemon with SIGTERM to its main process only
        assert d.stop(signal.SIGTERM) == 0
    finally:
        d.stop(signal.SIGKILL)
        remove_bridge(tmp_path)


@pytest.mark.requires_sysvinit_utils
def test_the_sysvinit_script(tmp_path):
    socket_path = tmp_path / "dockyard.sock"
    pidfile = tmp_path / "run" / "dockyard.pid"
    defaults = tmp_path / "defaults"
    defaults.write_text(
        f"DAEMON={DOCKYARD}\nDATA_ROOT={tmp_path / 'data'}\nPIDFILE={pidfile}\nLOGFILE={tmp_path / 'daemon.stderr'}\n"
        f'DOCKYARD_OPTS="-H unix://{socket_path} --storage-driver {STORAGE_DRIVER} --network-driver none"\n'
    )
    env = {**os.environ, "DOCKYARD_DEFAULTS": str(defaults)}

    def init(action: str) -> subprocess.CompletedProcess:
        return subprocess.run(["sh", str(CONTRIB / "dockyard.init"), action], env=env, capture_output=True, timeout=60)

    assert init("start").returncode == 0
    try:
        assert wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), timeout=30), (
            tmp_path / "daemon.stderr"
        ).read_text()
        pid = int(pidfile.read_text())
        d = wait_until_up(Daemon(tmp_path, socket_path, _Adopted(pid), tmp_path / "daemon.stderr"))
        assert init("status").returncode == 0
        survives_clients_leaving(d, pid)
        assert init("stop").returncode == 0
        assert wait_for(lambda: not os.path.exists(f"/proc/{pid}"), timeout=10)
        assert init("status").returncode != 0
    finally:
        if pidfile.exists() and pidfile.read_text().strip() and os.path.exists(f"/proc/{pidfile.read_text().strip()}"):
            os.kill(int(pidfile.read_text()), signal.SIGKILL)


class _Adopted:
    """The bits of ``subprocess.Popen`` the helpers use, for a daemon that is not our child."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode = None

    def poll(self) -> int | None:
        return None if os.path.exists(f"/proc/{self.pid}") else 0

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
