"""Built-in drivers load through the same entry points as third-party ones, and
implement the hooks their kind requires."""

from __future__ import annotations

import inspect
from importlib.metadata import entry_points

import pluggy
import pytest

from dockyard import drivers, hookspecs
from dockyard.errors import DriverNotFound, NotSupportedByDriver
from tests.helpers.requirements import require_that

BUILTINS = {
    "dockyard.storage": {"vfs", "overlay", "btrfs", "aufs"},
    "dockyard.exec": {"lxc", "oci"},
    "dockyard.network": {"none", "bridge"},
}


def _specs() -> dict[str, object]:
    return {name: fn for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(fn, "dockyard_spec")}


def test_every_builtin_is_an_entry_point():
    for group, names in BUILTINS.items():
        found = {ep.name for ep in entry_points(group=group)}
        assert names <= found, f"{group}: {names - found} not declared"


def test_every_hook_has_a_contract():
    for name, fn in _specs().items():
        doc = inspect.getdoc(fn) or ""
        opts = fn.dockyard_spec
        if opts.get("firstresult"):
            assert "Implemented by" in doc and "firstresult" in doc, name
        else:
            assert doc, name


@pytest.mark.parametrize("kind, prefix", [("storage", "storage_"), ("exec", "exec_"), ("network", "network_")])
def test_builtin_drivers_implement_required_hooks(kind, prefix):
    required = {
        name for name, fn in _specs().items() if name.startswith(prefix) and "(required)" in (inspect.getdoc(fn) or "")
    }
    for name in BUILTINS[f"dockyard.{kind}"]:
        why = drivers.available(kind).get(name)
        assert why is None or not why.startswith("cannot be imported"), why
        require_that(why is None, f"the {kind} driver {name}", why or "")
        cls = drivers.driver_class(kind, name)
        implemented = {n for n, m in inspect.getmembers(cls, inspect.isfunction) if hasattr(m, "dockyard_impl")}
        assert required <= implemented, f"{name} lacks {required - implemented}"


def test_unknown_driver_lists_available():
    with pytest.raises(DriverNotFound) as info:
        drivers.driver_class("storage", "no-such-driver")
    assert "vfs" in str(info.value)


def test_facade_reports_missing_implementation():
    pm = drivers.make_plugin_manager()
    with pytest.raises(NotSupportedByDriver, match="the storage driver does not implement storage_mount") as info:
        drivers.StorageDriver(pm).mount("x" * 64)
    assert info.value.status == 501


def test_facade_reports_none_from_a_driver_as_not_supported():
    class Declines:
        @hookspecs.hookimpl
        def exec_pause(self, container_id):
            return None  # firstresult: None means "not mine"

    pm = drivers.make_plugin_manager()
    pm.register(Declines())
    with pytest.raises(NotSupportedByDriver, match="exec_pause"):
        drivers.ExecDriver(pm).pause("c" * 64)


def test_hookimpls_validate_against_specs():
    class Bad:
        @hookspecs.hookimpl
        def storage_mount(self, layer_id, unexpected_argument):
            return None

    pm = drivers.make_plugin_manager()
    with pytest.raises(pluggy.PluginValidationError):
        pm.register(Bad())
