"""Network-driver conformance suite (a pytest plugin, loaded on request).

Use it from a test module::

    pytest_plugins = ["dockyard.testing.network_conformance"]
    from dockyard.testing.network_conformance import NetworkDriverSuite

    class TestMyDriver(NetworkDriverSuite):
        @pytest.fixture
        def driver_factory(self, tmp_path):
            def make(root):            # called again on the same root to simulate a restart
                driver = MyDriver(root, {...})
                return driver, driver.close
            return make

The factory returns ``(driver, cleanup)``; ``cleanup`` must release process
resources only (sockets, files), like a daemon that exits, so that the restart
test sees the host as a crashed daemon leaves it.  Host-side leftovers are the
suite's business: every container it prepares is released and removed in
``finally``.

Capabilities: a driver class may carry ``capabilities`` (any object with the
attributes of :class:`NetworkCapabilities`); tests needing one it lacks are
*skipped with the capability's name*, never passed.  ``--require-network-capability
NAME`` turns such a skip into a failure (for CI).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any, Callable

import pytest
from pydantic import BaseModel

from dockyard.models.runtime import NetworkRequest


class NetworkCapabilities(BaseModel):
    #: network modes the driver accepts ("none", "host", "bridge", "container")
    modes: list[str] = ["none", "host"]
    #: gives each container an IPv4 address (settings IPAddress)
    addresses: bool = False
    #: publishes ports (settings Ports)
    port_mapping: bool = False
    #: implements network_remove (rm frees addresses and ports)
    remove: bool = False
    #: a new instance on the same root reconciles what the last one left
    reconcile: bool = False
    #: implements network_create/inspect/delete (user-defined networks)
    user_networks: bool = False


def _cid() -> str:
    return secrets.token_hex(32)


class NetworkDriverSuite:
    """Subclass and override ``driver_factory`` (and optionally ``capabilities``)."""

    @pytest.fixture
    def driver_factory(self) -> Callable[[Path], tuple[Any, Callable[[], None]]]:
        raise NotImplementedError("override the driver_factory fixture")

    @pytest.fixture
    def capabilities(self, driver) -> NetworkCapabilities:
        caps = getattr(driver, "capabilities", None)
        if caps is None:
            return NetworkCapabilities()
        data = caps.model_dump() if hasattr(caps, "model_dump") else dict(vars(caps))
        return NetworkCapabilities(**{k: v for k, v in data.items() if k in NetworkCapabilities.model_fields})

    @pytest.fixture
    def root(self, tmp_path) -> Path:
        (tmp_path / "work").mkdir()
        return tmp_path / "root"

    @pytest.fixture
    def net(self, driver_factory, root):
        """A harness around the driver: remembers what it prepared and undoes it in finally
        (the driver's root is printed, so a failing test's report shows it)."""
        harness = _Harness(driver_factory, root)
        try:
            yield harness
        finally:
            print(f"driver root {root}: {sorted(str(p.relative_to(root)) for p in root.rglob('*'))}")
            harness.finish()

    @pytest.fixture
    def driver(self, net):
        return net.driver

    @staticmethod
    def need(request, caps: NetworkCapabilities, name: str, value: Any = True) -> None:
        have = getattr(caps, name)
        ok = value in have if isinstance(have, list) else bool(have) == value
        if not ok:
            required = request.config.getoption("--require-network-capability", default=[])
            message = f"driver lacks capability {name}={value!r}"
            if name in required or f"{name}={value}" in required:
                pytest.fail(message)
            pytest.skip(message)

    # -- tests ----------------------------------------------------------------
    def test_prepare_none_gives_a_namespace(self, net, capabilities, request):
        self.need(request, capabilities, "modes", "none")
        a = net.prepare(_cid(), mode="none")
        assert a.netns is not None and Path(a.netns).exists()

    def test_host_mode_has_no_namespace(self, net, capabilities, request):
        self.need(request, capabilities, "modes", "host")
        assert net.prepare(_cid(), mode="host").netns is None

    def test_prepare_is_idempotent(self, net, capabilities):
        mode = "bridge" if "bridge" in capabilities.modes else "none"
        c = _cid()
        first = net.prepare(c, mode=mode)
        second = net.prepare(c, mode=mode)
        assert first.netns == second.netns
        assert first.settings.get("IPAddress", "") == second.settings.get("IPAddress", "")

    def test_release_is_idempotent_and_removes_the_namespace(self, net, capabilities):
        mode = "bridge" if "bridge" in capabilities.modes else "none"
        c = _cid()
        a = net.prepare(c, mode=mode)
        assert net.driver.network_release(container_id=c) is True
        assert net.driver.network_release(container_id=c) is True
        assert not Path(a.netns).exists()
        assert net.driver.network_release(container_id=_cid()) is True  # never prepared

    def test_settings_reported(self, net, capabilities):
        mode = "bridge" if "bridge" in capabilities.modes else "none"
        c = _cid()
        a = net.prepare(c, mode=mode)
        s = net.driver.network_settings(container_id=c)
        assert isinstance(s, dict) and isinstance(s.get("Networks"), dict) and s["Networks"]
        assert s.get("SandboxKey", "") == str(a.netns)
        if capabilities.addresses:
            assert s["IPAddress"] and s["Gateway"] and s["IPPrefixLen"] and s["MacAddress"]
            assert s["IPAddress"] == a.settings["IPAddress"]

    def test_addresses_unique_while_held(self, net, capabilities, request):
        self.need(request, capabilities, "addresses")
        ips = [net.prepare(_cid(), mode="bridge").settings["IPAddress"] for _ in range(8)]
        assert len(set(ips)) == 8

    def test_stopped_container_keeps_its_address(self, net, capabilities, request):
        self.need(request, capabilities, "addresses")
        c = _cid()
        ip = net.prepare(c, mode="bridge").settings["IPAddress"]
        net.driver.network_release(container_id=c)
        other = net.prepare(_cid(), mode="bridge").settings["IPAddress"]
        assert other != ip
        assert net.prepare(c, mode="bridge").settings["IPAddress"] == ip

    def test_ports_reported_and_released(self, net, capabilities, request):
        self.need(request, capabilities, "port_mapping")
        self.need(request, capabilities, "remove")
        import socket

        c = _cid()
        a = net.prepare(c, mode="bridge", port_bindings={"80/tcp": [{"HostIp": "", "HostPort": ""}]})
        (binding,) = a.settings["Ports"]["80/tcp"]
        port = int(binding["HostPort"])
        assert net.driver.network_settings(container_id=c)["Ports"]["80/tcp"] == [binding]
        net.remove(c)
        with socket.socket() as s:
            s.bind(("0.0.0.0", port))

    def test_user_network_lifecycle(self, net, capabilities, request):
        self.need(request, capabilities, "user_networks")
        import ipaddress

        from dockyard.errors import Conflict, NotFound

        name = f"conformance-{secrets.token_hex(3)}"
        info = net.create_network(name)
        assert info["Name"] == name and info["Id"] and info["Driver"]
        subnet = ipaddress.IPv4Network(info["IPAM"]["Config"][0]["Subnet"])
        with pytest.raises(Conflict):
            net.driver.network_create(name=name, options={})
        c = _cid()
        a = net.prepare(c, mode=name, name="conformance-peer")
        ip = a.settings["Networks"][name]["IPAddress"]
        assert ipaddress.IPv4Address(ip) in subnet
        assert list(net.driver.network_inspect(name=name)["Containers"]) == [c]
        assert name in {n["Name"] for n in net.driver.network_list()}
        with pytest.raises(Conflict):  # in use
            net.driver.network_delete(name=name)
        net.remove(c)
        assert net.driver.network_delete(name=name) is True
        with pytest.raises(NotFound):
            net.driver.network_inspect(name=name)

    def test_reconcile_after_restart(self, net, capabilities, request):
        self.need(request, capabilities, "reconcile")
        c = _cid()
        a = net.prepare(c, mode="bridge", port_bindings={"80/tcp": [{}]} if capabilities.port_mapping else {})
        net.restart()
        s = net.driver.network_settings(container_id=c)
        assert s["IPAddress"] == a.settings["IPAddress"]
        assert s.get("Ports") == a.settings.get("Ports")
        assert net.prepare(c, mode="bridge").netns == a.netns  # still prepared: idempotent after restart
        assert net.prepare(_cid(), mode="bridge").settings["IPAddress"] != a.settings["IPAddress"]


class _Harness:
    def __init__(self, factory, root: Path) -> None:
        self.factory = factory
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.driver, self._cleanup = factory(root)
        self.prepared: list[str] = []
        self.networks: list[str] = []

    def create_network(self, name: str, options: dict | None = None) -> dict:
        self.networks.append(name)
        return self.driver.network_create(name=name, options=options or {})

    def prepare(self, container_id: str, **kw):
        self.prepared.append(container_id)
        return self.driver.network_prepare(request=NetworkRequest(container_id=container_id, **kw))

    def remove(self, container_id: str) -> None:
        remove = getattr(self.driver, "network_remove", None)
        self.driver.network_release(container_id=container_id)
        if remove is not None:
            remove(container_id=container_id)

    def restart(self) -> None:
        self._cleanup()
        self.driver, self._cleanup = self.factory(self.root)

    def finish(self) -> None:
        try:
            for c in self.prepared:
                try:
                    self.remove(c)
                except Exception as exc:  # keep cleaning
                    print(f"cleanup of {c[:12]}: {exc}")
            for name in self.networks:
                try:
                    self.driver.network_delete(name=name)
                except Exception as exc:  # NotFound when the test removed it
                    print(f"cleanup of network {name}: {exc}")
            shutdown = getattr(self.driver, "network_cleanup", None)
            if shutdown is not None:
                shutdown()
        finally:
            self._cleanup()
