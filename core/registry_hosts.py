"""Which registry hosts are trusted how: plain HTTP for loopback and ``--insecure-registry``
hosts, a CA from ``certs.d`` for the rest.  Shared by the distribution driver and the CLI.

``insecure`` lists hold host[:port] names and CIDRs, from ``--insecure-registry`` or
``DOCKYARD_INSECURE_REGISTRIES`` (comma or space separated).
"""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
from pathlib import Path

__all__ = ["CERT_DIRS", "insecure_registries", "is_insecure", "is_loopback", "registry_config", "tls_verify"]

#: per-registry CA certificates: <dir>/<host[:port]>/ca.crt, as docker reads them
CERT_DIRS = (Path("/etc/dockyard/certs.d"), Path("/etc/docker/certs.d"))


def is_loopback(domain: str) -> bool:
    host = domain.rsplit(":", 1)[0] if not domain.startswith("[") else domain[1 : domain.index("]")]
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def insecure_registries(option: str | list[str] | None = None) -> list[str]:
    """The insecure list from an option value, or from ``DOCKYARD_INSECURE_REGISTRIES`` when None."""
    value = option if option is not None else os.environ.get("DOCKYARD_INSECURE_REGISTRIES", "")
    items = value if isinstance(value, list) else re.split(r"[,\s]+", value)
    return [i.strip() for i in items if i.strip()]


def is_insecure(domain: str, insecure: list[str] | None = None) -> bool:
    """Whether plain HTTP (and unverified TLS) is allowed for ``domain``: loopback, or listed by
    name or CIDR.  ``insecure`` None reads the environment."""
    listed = insecure_registries() if insecure is None else insecure
    if is_loopback(domain) or domain in listed:
        return True
    host = domain.rsplit(":", 1)[0]
    for item in listed:
        if "/" in item:  # a CIDR
            try:
                if ipaddress.ip_address(host) in ipaddress.ip_network(item, strict=False):
                    return True
            except ValueError:
                continue
    return False


def tls_verify(domain: str, insecure: bool) -> bool | ssl.SSLContext:
    """httpx's ``verify`` for ``domain``: its ``certs.d`` CA if there is one, else the system's;
    no verification for an insecure host without a CA of its own."""
    for directory in CERT_DIRS:
        ca = directory / domain / "ca.crt"
        if ca.exists():
            return ssl.create_default_context(cafile=str(ca))
    return not insecure


def registry_config(insecure: list[str], mirrors: list[str]) -> dict:
    """``RegistryConfig`` of ``GET /info`` as moby reports it: insecure CIDRs (loopback always),
    one ``IndexConfigs`` entry for Docker Hub (with the mirrors) and one per insecure host name,
    and the mirrors with a trailing slash."""
    cidrs = ["127.0.0.0/8", *(i for i in insecure if "/" in i and i != "127.0.0.0/8")]
    mirrors = [m.rstrip("/") + "/" for m in mirrors]
    indexes = {"docker.io": {"Name": "docker.io", "Mirrors": mirrors, "Secure": True, "Official": True}}
    for host in (i for i in insecure if "/" not in i):
        indexes[host] = {"Name": host, "Mirrors": [], "Secure": False, "Official": False}
    return {
        "AllowNondistributableArtifactsCIDRs": [],
        "AllowNondistributableArtifactsHostnames": [],
        "InsecureRegistryCIDRs": cidrs,
        "IndexConfigs": indexes,
        "Mirrors": mirrors,
    }
