"""Published ports: what a request asks for, and holding the host ports.

A mapping is kernel DNAT (see firewall.py).  To make "port in use" a clear
error at start instead of a silently shadowed service, and to keep host
programs off a published port, the driver *binds* (without listening) a socket
on every published ``host_ip:host_port`` for as long as the mapping exists
(moby does the same when its userland proxy is off).  DNAT happens before the
socket lookup, so the bound socket never sees a packet.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import threading
from dataclasses import dataclass

from dockyard.errors import Conflict, InvalidParameter


@dataclass(frozen=True)
class Wanted:
    """One requested binding: container port/proto on host_ip, host port low..high (0 = automatic)."""

    proto: str
    container_port: int
    host_ip: str
    low: int
    high: int

    @property
    def auto(self) -> bool:
        return self.low == 0

    @property
    def spec(self) -> str:
        ports = "" if self.auto else (str(self.low) if self.low == self.high else f"{self.low}-{self.high}")
        return f"{self.host_ip}:{ports}:{self.container_port}/{self.proto}"


def split_key(key: str) -> tuple[int, str]:
    port, _, proto = key.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp"):
        raise InvalidParameter(f"invalid proto: {proto} (only tcp and udp are supported)")
    try:
        number = int(port)
    except ValueError:
        raise InvalidParameter(f"invalid containerPort: {port}") from None
    if not 0 < number < 65536:
        raise InvalidParameter(f"invalid containerPort: {port}")
    return number, proto


def _host_ports(text: str) -> tuple[int, int]:
    text = (text or "").strip()
    if text in ("", "0"):
        return 0, 0
    low_text, _, high_text = text.partition("-")
    try:
        low, high = int(low_text), int(high_text or low_text)
    except ValueError:
        raise InvalidParameter(f"invalid hostPort: {text}") from None
    if not 0 < low <= high < 65536:
        raise InvalidParameter(f"invalid hostPort: {text}")
    return low, high


def wanted(port_bindings: dict | None, exposed: list[str], publish_all: bool, default_ip: str) -> list[Wanted]:
    """Normalise HostConfig.PortBindings (+ -P over ExposedPorts) into a list of bindings."""
    result: list[Wanted] = []
    bindings = dict(port_bindings or {})
    if publish_all:
        bound = {split_key(k) for k in bindings}
        for key in exposed:
            if split_key(key) not in bound:
                bindings[key] = [{"HostIp": "", "HostPort": ""}]
    for key, entries in bindings.items():
        cport, proto = split_key(key)
        for entry in entries or [{"HostIp": "", "HostPort": ""}]:
            host_ip = (entry or {}).get("HostIp") or default_ip
            try:
                address = ipaddress.ip_address(host_ip)
            except ValueError:
                raise InvalidParameter(f"invalid host IP for port {key}: {host_ip!r}") from None
            if address.version != 4:
                if address == ipaddress.ip_address("::"):
                    continue  # docker CLI's dual-stack binding: the IPv4 one carries it
                raise InvalidParameter(f"IPv6 host address {host_ip} is not supported by the bridge driver")
            low, high = _host_ports((entry or {}).get("HostPort", ""))
            item = Wanted(proto, cport, str(address), low, high)
            if item not in result:
                result.append(item)
    return result


def exposed_keys(port_bindings: dict | None, exposed: list[str]) -> list[str]:
    keys = []
    for key in list(exposed or []) + list((port_bindings or {}).keys()):
        cport, proto = split_key(key)
        normal = f"{cport}/{proto}"
        if normal not in keys:
            keys.append(normal)
    return keys


def _family_any(host_ip: str) -> str:
    return "0.0.0.0" if host_ip in ("", "0.0.0.0") else host_ip


class Reservations:
    """Bound sockets keeping published host ports ours, keyed (proto, host_ip, port)."""

    def __init__(self) -> None:
        self._socks: dict[tuple[str, str, int], socket.socket] = {}
        self._lock = threading.Lock()

    def held(self, proto: str, host_ip: str, port: int) -> bool:
        return (proto, _family_any(host_ip), port) in self._socks

    def bind(self, proto: str, host_ip: str, port: int) -> None:
        """Bind ``host_ip:port``; raises OSError (EADDRINUSE, EADDRNOTAVAIL) if impossible."""
        key = (proto, _family_any(host_ip), port)
        with self._lock:
            if key in self._socks:
                return
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
            try:
                sock.set_inheritable(False)
                sock.bind((key[1], port))  # no SO_REUSEADDR: a second bind of the same port must fail
            except OSError:
                sock.close()
                raise
            self._socks[key] = sock

    def release(self, proto: str, host_ip: str, port: int) -> None:
        with self._lock:
            sock = self._socks.pop((proto, _family_any(host_ip), port), None)
        if sock is not None:
            sock.close()

    def close(self) -> None:
        with self._lock:
            socks, self._socks = list(self._socks.values()), {}
        for sock in socks:
            sock.close()

    def __len__(self) -> int:
        return len(self._socks)


def bind_error(endpoint: str, proto: str, host_ip: str, port: int, exc: OSError) -> Exception:
    where = f"{_family_any(host_ip)}:{port}"
    prefix = f"driver failed programming external connectivity on endpoint {endpoint}: "
    if exc.errno == errno.EADDRINUSE:
        return Conflict(
            prefix + f"Error starting userland proxy: listen {proto}4 {where}: bind: address already in use"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return InvalidParameter(prefix + f"listen {proto}4 {where}: bind: cannot assign requested address")
    return Conflict(prefix + f"listen {proto}4 {where}: {exc.strerror}")


def allocated_error(endpoint: str, host_ip: str, port: int) -> Exception:
    return Conflict(
        f"driver failed programming external connectivity on endpoint {endpoint}: "
        f"Bind for {_family_any(host_ip)}:{port} failed: port is already allocated"
    )
