"""Observers: found through the ``dockyard.observers`` entry point group, and each sees every event."""

from __future__ import annotations

import sys
import textwrap
import threading

import pluggy
import pytest

from dockyard import drivers
from dockyard.engine import Engine
from dockyard.errors import System
from dockyard.observers import Observers, load_observers
from tests.helpers.drivers import StubExec, StubNetwork, use_drivers
from tests.helpers.plugins import fake_distribution

RECORDER = """
    import threading
    from dockyard import hookimpl

    seen = []

    @hookimpl
    def container_started(container_id, pid):
        seen.append(("started", container_id, pid, threading.current_thread().name))

    @hookimpl
    def container_died(container_id, exit_code):
        seen.append(("died", container_id, exit_code, threading.current_thread().name))
"""


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """install(module name, source, entry name=...) puts an observer on sys.path, found by entry point."""
    made = []

    def install(module: str, source: str, entry: str | None = None) -> None:
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        site = tmp_path / "site" / module
        fake_distribution(site, f"dist-{module}", {"dockyard.observers": {entry or module: module}})
        monkeypatch.syspath_prepend(str(site))
        made.append(module)

    monkeypatch.syspath_prepend(str(tmp_path))
    yield install
    for module in made:
        sys.modules.pop(module, None)


def test_every_observer_sees_every_event_off_the_callers_thread(installed):
    installed("first_recorder", RECORDER)
    installed("second_recorder", RECORDER)
    pm = drivers.make_plugin_manager()
    assert load_observers(pm) == ["first_recorder", "second_recorder"]
    observers = Observers(pm)
    observers.container_started("c1", 42)
    observers.container_died("c1", 3)
    assert observers.flush()
    observers.close()
    for module in ("first_recorder", "second_recorder"):
        seen = sys.modules[module].seen
        assert [s[:3] for s in seen] == [("started", "c1", 42), ("died", "c1", 3)]
        assert {s[3] for s in seen} == {"observers"} != {threading.current_thread().name}


def test_an_observer_that_raises_keeps_no_one_else_from_the_event(installed, caplog):
    installed(
        "broken_recorder",
        """
        from dockyard import hookimpl

        @hookimpl
        def container_died(container_id, exit_code):
            raise RuntimeError("webhook down")
    """,
    )
    installed("zz_recorder", RECORDER)
    pm = drivers.make_plugin_manager()
    load_observers(pm)
    observers = Observers(pm)
    for code in (1, 2):
        observers.container_died("c2", code)
    assert observers.flush()
    observers.close()
    assert [s[:3] for s in sys.modules["zz_recorder"].seen] == [("died", "c2", 1), ("died", "c2", 2)]
    failures = [r for r in caplog.records if "observer:broken_recorder failed in container_died" in r.getMessage()]
    assert len(failures) == 2


def test_blocking_and_disabling(installed, monkeypatch):
    installed("blocked_recorder", RECORDER, entry="blocked")
    monkeypatch.setenv("DOCKYARD_BLOCK_PLUGINS", "other, blocked")
    assert load_observers(drivers.make_plugin_manager()) == []
    monkeypatch.delenv("DOCKYARD_BLOCK_PLUGINS")
    monkeypatch.setenv("DOCKYARD_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert load_observers(drivers.make_plugin_manager()) == []
    monkeypatch.delenv("DOCKYARD_DISABLE_PLUGIN_AUTOLOAD")
    assert load_observers(drivers.make_plugin_manager()) == ["blocked"]


def test_an_observer_that_cannot_load_is_named(installed):
    installed(
        "typo_observer",
        """
        from dockyard import hookimpl

        @hookimpl
        def container_stated(container_id, pid):  # no such hook
            pass
    """,
    )
    pm = drivers.make_plugin_manager()
    load_observers(pm)
    with pytest.raises(pluggy.PluginValidationError, match="container_stated"):
        pm.check_pending()
    installed("missing_dependency", "import no_such_module_anywhere\n")
    with pytest.raises(System, match="observer plugin 'missing_dependency'.*DOCKYARD_BLOCK_PLUGINS=missing_dependency"):
        load_observers(drivers.make_plugin_manager())


def test_the_engine_refuses_an_observer_for_no_hook(installed, tmp_path, monkeypatch):
    installed(
        "typo_observer2",
        """
        from dockyard import hookimpl

        @hookimpl
        def image_pulled(reference):  # not a hook
            pass
    """,
    )
    use_drivers(monkeypatch, exec={"stub": StubExec}, network={"stub": StubNetwork})
    with pytest.raises(pluggy.PluginValidationError, match="image_pulled"):
        Engine.open(tmp_path / "root", storage="vfs", execution="stub", network="stub")


def test_daemon_configured_is_historic(installed):
    pm = drivers.make_plugin_manager()
    observers = Observers(pm)
    observers.daemon_configured({"debug": True})
    installed(
        "late_observer",
        """
        from dockyard import hookimpl

        configs = []

        @hookimpl
        def daemon_configured(config):
            configs.append(config)
    """,
    )
    load_observers(pm)
    assert sys.modules["late_observer"].configs == [{"debug": True}]
