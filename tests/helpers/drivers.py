"""Run an engine on driver classes a test defines, through the real loading path.

:func:`use_drivers` swaps the stevedore extension manager of a kind for a test
instance (stevedore's ``make_test_instance``) holding the given classes, so
``Engine.open`` finds, checks, constructs and registers them exactly as it does
installed drivers.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from stevedore import ExtensionManager
from stevedore.extension import Extension

from dockyard import drivers, hookimpl
from dockyard.errors import System
from dockyard.models.runtime import ExitStatus, ProcessState


def use_drivers(monkeypatch: pytest.MonkeyPatch, **by_kind: dict[str, type]) -> None:
    """``use_drivers(monkeypatch, exec={"stub": StubExec})``: those classes replace the installed drivers
    of each kind named; other kinds keep theirs."""
    real = drivers._extensions

    def extensions(kind: str) -> ExtensionManager:
        if kind not in by_kind:
            return real(kind)
        found = [Extension(name, None, cls, None) for name, cls in by_kind[kind].items()]
        return ExtensionManager.make_test_instance(found, namespace=drivers.NAMESPACE[kind])

    monkeypatch.setattr(drivers, "_extensions", extensions)


class StubExec:
    """An exec driver with the required hooks only; it never runs a process."""

    def __init__(self, root: Path, options: dict) -> None:
        self.root = root

    @hookimpl
    def exec_create(self, spec):
        return True

    @hookimpl
    def exec_attach(self, container_id, stdin, stdout, stderr):
        raise System("StubExec runs no process")

    @hookimpl
    def exec_start(self, container_id) -> ProcessState:
        raise System("StubExec runs no process")

    @hookimpl
    def exec_wait(self, container_id) -> ExitStatus:
        raise System("StubExec runs no process")

    @hookimpl
    def exec_kill(self, container_id, signal):
        return True

    @hookimpl
    def exec_stop(self, container_id, signal, timeout):
        raise System("StubExec runs no process")

    @hookimpl
    def exec_state(self, container_id):
        return None

    @hookimpl
    def exec_resize(self, container_id, height, width):
        return True

    @hookimpl
    def exec_list(self):
        return []

    @hookimpl
    def exec_restore(self, container_id):
        return None

    @hookimpl
    def exec_delete(self, container_id):
        return True

    @hookimpl
    def exec_status(self):
        return [("Exec Driver", "stub")]


class StubNetwork:
    """A network driver with the required hooks only: no user networks, no ``network_remove``."""

    def __init__(self, root: Path, options: dict) -> None:
        self.root = root

    @hookimpl
    def network_prepare(self, request):
        raise System("StubNetwork attaches nothing")

    @hookimpl
    def network_release(self, container_id):
        return True

    @hookimpl
    def network_settings(self, container_id):
        return {}

    @hookimpl
    def network_status(self):
        return [("Network Driver", "stub")]
