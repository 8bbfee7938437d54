"""The embedded DNS resolver of user-defined networks.

One resolver per user network, listening on UDP and TCP port 53 of the
network's *gateway address* (the bridge's own address), inside the daemon
process: one thread runs an asyncio loop that serves every network of the
driver.  A container on a user network gets ``nameserver <gateway>`` in its
resolv.conf (through ``NetworkAttachment.dns``).

Answers (wire format by ``dnslib``; no packet is parsed by hand here):

* ``A`` for a container name, an alias (``--network-alias``, ``network connect
  --alias``), a short container ID, or ``<name>.<network>``, of a *running*
  container that shares a user network with the asking container -> its
  addresses on the shared networks (TTL 600, as Docker);
* other query types for such a name -> NOERROR with no answer (IPv4 only);
* ``PTR`` for the address of such a container -> its name;
* anything else -> forwarded unchanged to the upstream servers (the
  container's ``--dns`` servers, else the daemon's: option ``dns_upstream``,
  by default the host's resolv.conf nameservers, loopback ones included since
  the resolver runs in the host's namespace), by UDP or TCP as it came;
  with no upstream (``dns_upstream=none``, or an ``--internal`` network)
  -> NXDOMAIN.

A query whose source address is not a container of the network the resolver
serves is REFUSED: a container of another network cannot read this network's
names by sending to its gateway.

The directory of names is the driver's SQLite store, read at each query (no
cache to go stale: a container that stops stops resolving at once).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from dnslib import AAAA, PTR, QTYPE, RCODE, RR, A, DNSError, DNSRecord

log = logging.getLogger(__name__)

PORT = 53
TTL = 600
UPSTREAM_TIMEOUT = 3.0


class Directory(Protocol):
    """What the resolver asks the driver.  Called from the resolver's thread."""

    def dns_scope(self, network: str, client_ip: str) -> list[str] | None:
        """The user networks whose names ``client_ip`` (a source address on ``network``)
        may resolve; ``None`` if it is no running container of ``network``."""

    def dns_addresses(self, networks: list[str], name: str) -> list[str] | None:
        """Addresses of ``name`` (lower case, no trailing dot) on ``networks``; ``None`` if unknown."""

    def dns_name_of(self, networks: list[str], ip: str) -> str | None:
        """The container name at ``ip`` on ``networks``, for PTR."""

    def dns_upstream(self, network: str, client_ip: str) -> list[tuple[str, int]]:
        """Where to forward other names for this client; ``[]`` = answer NXDOMAIN."""


def parse_servers(text: str) -> list[tuple[str, int]]:
    """``"10.0.0.1, 127.0.0.1:5353"`` -> ``[("10.0.0.1", 53), ("127.0.0.1", 5353)]``; ``none`` -> ``[]``."""
    if text.strip().lower() in ("none", "off"):
        return []
    out = []
    for item in text.replace(" ", ",").split(","):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep:
            host, port = item, "53"
        socket.inet_aton(host)  # IPv4 only; raises OSError
        out.append((host, int(port)))
    return out


def host_servers(path: Path = Path("/etc/resolv.conf")) -> list[tuple[str, int]]:
    """The host's IPv4 nameservers (loopback ones too: the resolver runs in the host's namespace)."""
    servers = []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            try:
                socket.inet_aton(words[1])
            except OSError:
                continue  # IPv6
            servers.append((words[1], 53))
    return servers


def answer(directory: Directory, network: str, client_ip: str, data: bytes) -> tuple[bytes | None, bool]:
    """Handle one query.  Returns ``(reply, forward)``: a reply to send, or ``(None, True)``
    when the query must go upstream, or ``(None, False)`` to drop garbage."""
    try:
        query = DNSRecord.parse(data)
    except (DNSError, Exception):  # dnslib raises assorted errors on garbage
        return None, False
    reply = query.reply()
    if query.header.opcode != 0 or len(query.questions) != 1:
        reply.header.rcode = RCODE.NOTIMP
        return reply.pack(), False
    scope = directory.dns_scope(network, client_ip)
    if scope is None:
        reply.header.rcode = RCODE.REFUSED
        return reply.pack(), False
    q = query.q
    name = str(q.qname).rstrip(".").lower()
    if q.qtype == QTYPE.PTR and name.endswith(".in-addr.arpa"):
        parts = name[: -len(".in-addr.arpa")].split(".")
        if len(parts) == 4:
            target = directory.dns_name_of(scope, ".".join(reversed(parts)))
            if target:
                reply.add_answer(RR(q.qname, QTYPE.PTR, rdata=PTR(target + "."), ttl=TTL))
                return reply.pack(), False
    elif name:
        addresses = directory.dns_addresses(scope, name)
        if addresses is not None:
            for ip in addresses:
                if ":" in ip and q.qtype in (QTYPE.AAAA, QTYPE.ANY):
                    reply.add_answer(RR(q.qname, QTYPE.AAAA, rdata=AAAA(ip), ttl=TTL))
                elif ":" not in ip and q.qtype in (QTYPE.A, QTYPE.ANY):
                    reply.add_answer(RR(q.qname, QTYPE.A, rdata=A(ip), ttl=TTL))
            return reply.pack(), False  # a local name: NOERROR, no record of other types
    return None, True


def nxdomain(data: bytes, rcode: int = RCODE.NXDOMAIN) -> bytes | None:
    try:
        reply = DNSRecord.parse(data).reply()
    except Exception:
        return None
    reply.header.rcode = rcode
    return reply.pack()


class _Forwarder(asyncio.DatagramProtocol):
    def __init__(self, future: asyncio.Future) -> None:
        self.future = future

    def datagram_received(self, data: bytes, addr) -> None:
        if not self.future.done():
            self.future.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


async def _forward_udp(data: bytes, servers: list[tuple[str, int]]) -> bytes | None:
    loop = asyncio.get_running_loop()
    for server in servers:
        future = loop.create_future()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                functools.partial(_Forwarder, future), remote_addr=server
            )
        except OSError:
            continue
        try:
            transport.sendto(data)
            return await asyncio.wait_for(future, UPSTREAM_TIMEOUT)
        except (OSError, asyncio.TimeoutError):
            continue
        finally:
            transport.close()
    return None


async def _forward_tcp(data: bytes, servers: list[tuple[str, int]]) -> bytes | None:
    for host, port in servers:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), UPSTREAM_TIMEOUT)
        except (OSError, asyncio.TimeoutError):
            continue
        try:
            writer.write(struct.pack("!H", len(data)) + data)
            await writer.drain()
            size = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), UPSTREAM_TIMEOUT))[0]
            return await asyncio.wait_for(reader.readexactly(size), UPSTREAM_TIMEOUT)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, struct.error):
            continue
        finally:
            writer.close()
    return None


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: "DnsServer", network: str) -> None:
        self.server, self.network = server, network
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        asyncio.ensure_future(self._handle(data, addr))

    async def _handle(self, data: bytes, addr) -> None:
        reply = await self.server.handle(self.network, addr[0], data, tcp=False)
        if reply is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply, addr)


@dataclass
class _Listener:
    address: str
    udp: asyncio.DatagramTransport
    tcp: asyncio.base_events.Server
    tasks: set = field(default_factory=set)


class DnsServer:
    """Resolvers for every user network of one driver, on one thread with its own event loop."""

    def __init__(self, directory: Directory, port: int = PORT) -> None:
        self.directory = directory
        self.port = port
        self.loop = asyncio.new_event_loop()
        self.listeners: dict[str, _Listener] = {}
        self.thread = threading.Thread(target=self._run, name="dockyard-dns", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        self.loop.close()

    def _call(self, coro, timeout: float = 10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    # -- control (any thread) ------------------------------------------------------
    def add(self, network: str, address: str) -> None:
        """Serve ``network`` on ``address``:53 (UDP and TCP).  Re-adding moves it.  Raises OSError."""
        self._call(self._add(network, address))

    def remove(self, network: str) -> None:
        if not self.loop.is_closed():
            self._call(self._remove(network))

    def serving(self) -> dict[str, str]:
        return {name: lst.address for name, lst in self.listeners.items()}

    def close(self) -> None:
        if self.loop.is_closed() or not self.thread.is_alive():
            return
        try:
            self._call(self._close_all())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)

    # -- loop side -------------------------------------------------------------------
    async def _add(self, network: str, address: str) -> None:
        old = self.listeners.get(network)
        if old is not None and old.address == address:
            return
        await self._remove(network)
        loop = asyncio.get_running_loop()
        udp, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(self, network), local_addr=(address, self.port), reuse_port=False
        )
        try:
            tcp = await asyncio.start_server(
                lambda r, w: self._tcp_client(network, r, w), address, self.port, reuse_address=True
            )
        except BaseException:
            udp.close()
            raise
        self.listeners[network] = _Listener(address, udp, tcp)

    async def _remove(self, network: str) -> None:
        lst = self.listeners.pop(network, None)
        if lst is None:
            return
        lst.udp.close()
        lst.tcp.close()
        for task in list(lst.tasks):
            task.cancel()
        await lst.tcp.wait_closed()

    async def _close_all(self) -> None:
        for network in list(self.listeners):
            await self._remove(network)

    async def _tcp_client(self, network: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lst = self.listeners.get(network)
        task = asyncio.current_task()
        if lst is not None:
            lst.tasks.add(task)
        peer = (writer.get_extra_info("peername") or ("", 0))[0]
        try:
            while True:
                head = await asyncio.wait_for(reader.readexactly(2), 30)
                data = await reader.readexactly(struct.unpack("!H", head)[0])
                reply = await self.handle(network, peer, data, tcp=True)
                if reply is None:
                    break
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, OSError, asyncio.CancelledError):
            pass
        finally:
            if lst is not None:
                lst.tasks.discard(task)
            writer.close()

    async def handle(self, network: str, client_ip: str, data: bytes, tcp: bool) -> bytes | None:
        try:
            reply, forward = await asyncio.to_thread(answer, self.directory, network, client_ip, data)
            if not forward:
                return reply
            servers = await asyncio.to_thread(self.directory.dns_upstream, network, client_ip)
        except Exception as exc:  # a resolver must keep serving
            log.warning("dns on %s: %s", network, exc)
            return nxdomain(data, RCODE.SERVFAIL)
        if not servers:
            return nxdomain(data)
        reply = await (_forward_tcp if tcp else _forward_udp)(data, servers)
        return reply if reply is not None else nxdomain(data, RCODE.SERVFAIL)
