"""How the LXC driver tells a container that ran and ended during its start from one that never ran."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from dockyard import conmon
from dockyard.errors import System
from dockyard.models.runtime import ExitStatus
from dockyard.plugins.exec_lxc.driver import LxcDriver

#: what LXC 5 logs at WARN on every start into a netns the network driver made (it already has an id)
NSID_WARN = (
    "lxc 20261208014333.400 WARN     start - ../src/lxc/start.c:lxc_spawn:1832 - "
    "File exists - Failed to allocate new network namespace id\n"
)
EXEC_ERROR = (
    "lxc 20261208014333.400 ERROR    start - ../src/lxc/start.c:start:2197 - "
    'No such file or directory - Failed to exec "/nope"\n'
)


class _Supervisor:
    def __init__(self, code: int) -> None:
        self.code, self.recorded = code, None

    def wait(self, d, timeout):
        return ExitStatus(exit_code=self.code, finished_at=datetime.now(timezone.utc))

    def record_exit(self, d, code):
        self.recorded = code


def _driver(code: int) -> LxcDriver:
    driver = object.__new__(LxcDriver)  # only the supervisor is used on this path
    driver.sv = _Supervisor(code)
    return driver


def test_an_app_that_ended_before_its_pid_was_seen_ran(tmp_path):
    # _await_init read init.pid before the start-host hook wrote it, then found the monitor gone
    (tmp_path / "lxc.log").write_text(NSID_WARN)
    (tmp_path / "init.pid").write_text("4242\n")
    driver = _driver(conmon.UNKNOWN_EXIT)
    assert driver._ran_or_failed(tmp_path, 0) == 4242
    assert driver.sv.recorded is None


def test_a_container_whose_init_never_ran_fails_with_lxcs_error(tmp_path):
    (tmp_path / "lxc.log").write_text(NSID_WARN + EXEC_ERROR)
    driver = _driver(conmon.UNKNOWN_EXIT)
    with pytest.raises(System, match="Failed to exec"):
        driver._ran_or_failed(tmp_path, 0)
    assert driver.sv.recorded == 127
