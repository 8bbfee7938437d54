"""Engine API network shapes (v1.41): what ``POST /networks/create`` takes."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator

from dockyard.models.api import Allowed, ApiModel, Refused

__all__ = ["IPAM", "IPAMConfig", "NetworkCreateRequest", "empty_endpoint"]


class IPAMConfig(ApiModel):
    """One address pool: ``--subnet``, ``--ip-range``, ``--gateway``, ``--aux-address``."""

    subnet: str = ""
    ip_range: str = Field(default="", alias="IPRange")
    gateway: str = ""
    auxiliary_addresses: dict[str, str] | None = None

    @field_validator("subnet", "ip_range", "gateway", mode="before")
    @classmethod
    def _null(cls, value: Any) -> Any:
        return "" if value is None else value


class IPAM(ApiModel):
    driver: Annotated[str, Allowed("", "default", why="the built-in IPAM only")] = "default"
    config: list[IPAMConfig] | None = None
    options: Annotated[dict[str, str] | None, Refused("IPAM driver options")] = None

    @field_validator("driver", mode="before")
    @classmethod
    def _null_driver(cls, value: Any) -> Any:
        return value or "default"


class NetworkCreateRequest(ApiModel):
    """Body of ``POST /networks/create``."""

    name: str = ""
    #: names are always unique here (as from API 1.44 on): false, which would let a second network take a
    #: name in use, is refused
    check_duplicate: Annotated[bool | None, Allowed(None, True, why="network names are always unique")] = None
    driver: str = "bridge"
    scope: Annotated[str, Allowed("", "local")] = ""
    internal: bool = False
    #: stored and shown: every local network accepts any container, as in Docker
    attachable: bool = False
    ingress: Annotated[bool, Refused("swarm routing mesh")] = False
    config_only: Annotated[bool, Refused("config-only networks")] = False
    config_from: Annotated[dict | None, Refused("config-only networks")] = None
    ipam: IPAM | None = Field(default=None, alias="IPAM")
    enable_ipv6: bool = Field(default=False, alias="EnableIPv6")
    options: dict[str, str] | None = None
    labels: dict[str, str] | None = None

    @field_validator("driver", mode="before")
    @classmethod
    def _null_driver(cls, value: Any) -> Any:
        return value or "bridge"

    @field_validator("internal", "attachable", "enable_ipv6", mode="before")
    @classmethod
    def _null_false(cls, value: Any) -> Any:
        return False if value is None else value


def empty_endpoint() -> dict[str, Any]:
    """An ``EndpointSettings`` of ``NetworkSettings.Networks`` with nothing assigned yet (a container on a
    network it has no address on: not running, or on a driver without addresses), as Docker shows it."""
    return {
        "IPAMConfig": None,
        "Links": None,
        "Aliases": None,
        "NetworkID": "",
        "EndpointID": "",
        "Gateway": "",
        "IPAddress": "",
        "IPPrefixLen": 0,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "MacAddress": "",
        "DriverOpts": None,
    }
