"""The ``none`` network driver: loopback only, or the host's network.

Modes: ``none`` and ``default`` give the container a network namespace of its
own with only ``lo`` (up); ``host`` shares the host's.  The bridge driver
(plugins/net_bridge) adds ``bridge`` and user networks.
"""

from __future__ import annotations

from pathlib import Path

from dockyard import hookimpl, netns
from dockyard.errors import DriverNotSupported, InvalidParameter
from dockyard.models.network import empty_endpoint
from dockyard.models.runtime import NetworkAttachment, NetworkRequest

LOOPBACK_MODES = ("none", "default", "")


class NoneNetworkDriver:
    name = "none"

    def __init__(self, root: Path, options: dict) -> None:
        self.root = root
        self.options = options

    @classmethod
    def check_supported(cls) -> None:
        if not Path("/proc/self/ns/net").exists():
            raise DriverNotSupported(cls.name, "the kernel has no network namespaces")

    @hookimpl
    def network_prepare(self, request: NetworkRequest) -> NetworkAttachment:
        if request.mode == "host":
            return NetworkAttachment(netns=None, settings=self._settings("host"))
        if request.mode not in LOOPBACK_MODES:
            raise InvalidParameter(
                f"network mode {request.mode!r} is not available with the 'none' network driver: use 'none' or 'host'"
            )
        path = netns.create(netns.name_for(request.container_id))
        return NetworkAttachment(netns=path, settings=self._settings("none", path))

    @hookimpl
    def network_release(self, container_id: str) -> bool:
        netns.remove(netns.name_for(container_id))
        return True

    @hookimpl
    def network_settings(self, container_id: str) -> dict:
        path = netns.path_of(netns.name_for(container_id))
        return self._settings("none", path) if path.exists() else self._settings("host")

    @hookimpl
    def network_status(self) -> list[tuple[str, str]]:
        return [("Network Driver", "none (loopback only; host mode available)")]

    @staticmethod
    def _settings(network: str, path: Path | None = None) -> dict:
        endpoint = empty_endpoint()
        return {"SandboxKey": str(path) if path else "", "Networks": {network: endpoint}}
