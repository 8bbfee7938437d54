"""The ``bridge`` network driver.

Modes
-----
``default`` / ``bridge``
    the default network: bridge ``dockyard0`` (option ``bridge``), one netns and
    veth per container, an address from the persistent IPAM, NAT and ports.
``<network name>``
    a user-defined network (:meth:`network_create`): its own bridge
    ``dy-<id12>``, subnet and nftables table, isolated from the others.
``none``
    a namespace with ``lo`` only.
``host``
    the host's network (no namespace).
``container:<id>``
    the namespace the core resolved in ``NetworkRequest.shared_netns``.

Lifecycle (per container)
-------------------------
* :meth:`network_prepare` (each start): runs the endpoint step queue
  (``steps/``); idempotent for a prepared container.
* :meth:`network_release` (each stop): deletes the namespace, veth, port
  reservations and rules, but *keeps* the address and host ports allocated.
* :meth:`network_remove` (rm): releases, then frees the address and ports.

State on disk: ``<root>/bridge.db`` (see store.py).  Nothing else is needed to
reconcile after a crash: at construction the driver re-creates the bridges,
keeps the endpoints whose namespace and veth still exist (re-binding their host
ports), deletes every other veth on its bridges, re-applies its firewall rules
(nftables tables or iptables chains, option ``firewall``) in one atomic
transaction each (which also wipes stale rules), and starts the embedded DNS
resolver of every user network again (dns.py).

Locking: one re-entrant lock around every public method; the netlink work per
container is a few milliseconds.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel
from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from dockyard import hookimpl
from dockyard import netns as core_netns
from dockyard.errors import Conflict, DriverNotSupported, Forbidden, InvalidParameter, NotFound, System
from dockyard.models.network import empty_endpoint
from dockyard.models.runtime import EndpointRequest, NetworkAttachment, NetworkRequest
from dockyard.timefmt import iso_now

from . import firewall, ipam, nsutil, ports, steps, subnet
from .steps import bridge_device
from .options import CANDIDATES, BridgeOptions, parse
from .store import Store

log = logging.getLogger(__name__)

_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")

DEFAULT_NETWORK = "bridge"
DEFAULT_MODES = ("default", "bridge", "")
PREDEFINED = ("bridge", "host", "none")


class Capabilities(BaseModel):
    """What the network conformance suite may expect of this driver."""

    modes: list[str] = ["none", "host", "bridge", "container"]
    addresses: bool = True
    port_mapping: bool = True
    remove: bool = True
    reconcile: bool = True
    user_networks: bool = True


@dataclass
class NetworkContext:
    ipr: IPRoute
    name: str
    bridge: str
    subnet: str
    gateway: str
    mtu: int
    ip_forward: bool
    bridge_index: int = 0
    #: IPv6 subnet and gateway of an IPv6 network ("" otherwise)
    subnet6: str = ""
    gateway6: str = ""


@dataclass
class EndpointContext:
    driver: "BridgeNetworkDriver"
    ipr: IPRoute
    container_id: str
    network: str
    endpoint_name: str
    netns_name: str
    veth: str
    peer: str
    ifname: str
    ip: str
    mac: str
    prefixlen: int
    gateway: str
    mtu: int
    bridge_index: int
    default_route: bool
    wanted: list[ports.Wanted] = field(default_factory=list)
    mappings: list[dict] = field(default_factory=list)
    netns_path: Path | None = None
    #: IPv6 address, prefix and gateway ("" / 0 on an IPv4-only network)
    ip6: str = ""
    prefixlen6: int = 0
    gateway6: str = ""
    #: extra link-local addresses (--link-local-ip)
    link_local: list[str] = field(default_factory=list)


def _veth_names(container_id: str, network: str) -> tuple[str, str]:
    digest = hashlib.sha256(f"{container_id}/{network}".encode()).hexdigest()[:11]
    return "vd" + digest, "vp" + digest


class BridgeNetworkDriver:
    name = "bridge"
    capabilities = Capabilities()

    def __init__(self, root: Path, options: dict) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.opts: BridgeOptions = parse(options)
        self.fw = firewall.backend(self.opts.firewall)
        self.fw.check_available()
        self.dns = None  # dns.DnsServer, made with the first user network
        self.lock = threading.RLock()
        self.store = Store(self.root / "bridge.db")
        self.reservations = ports.Reservations()
        self._pending: set[str] = set()
        self._exposed: dict[str, list[str]] = {}
        self.timings: dict[str, float] = {}
        try:
            self.ipr = IPRoute()
        except OSError as exc:
            raise DriverNotSupported(self.name, f"no netlink socket: {exc}") from None
        try:
            with self.lock:
                self._setup_default_network()
                for row in self.store.networks():
                    self._setup_network(row)
                self._reconcile()
                self._start_resolvers()
        except BaseException:
            self._stop_resolvers()
            self.reservations.close()
            self.ipr.close()
            self.store.close()
            raise

    @classmethod
    def check_supported(cls) -> None:
        if not Path("/proc/self/ns/net").exists():
            raise DriverNotSupported(cls.name, "the kernel has no network namespaces")
        if os.geteuid() != 0:
            raise DriverNotSupported(cls.name, "needs root (bridges, namespaces, nftables)")
        if firewall.any_available() is None:
            raise DriverNotSupported(cls.name, "neither nft (package nftables) nor iptables-restore is installed")

    # ------------------------------------------------------------------ networks
    def _host_networks(self, exclude_bridges: set[str] = frozenset()) -> list[ipaddress.IPv4Network]:
        """Host routes and addresses, leaving out those on our own bridges."""
        skip = set()
        for name in exclude_bridges:
            skip.update(self.ipr.link_lookup(ifname=name))
        nets = []
        for route in self.ipr.get_routes(family=2):
            if route.get_attr("RTA_OIF") in skip:
                continue
            dst, plen = route.get_attr("RTA_DST"), route["dst_len"]
            if dst is None or plen == 0 or dst.startswith("127."):
                continue
            nets.append(ipaddress.IPv4Network(f"{dst}/{plen}", strict=False))
        for addr in self.ipr.get_addr(family=2):
            if addr["index"] in skip:
                continue
            a = addr.get_attr("IFA_ADDRESS")
            if a and not a.startswith("127."):
                nets.append(ipaddress.IPv4Network(f"{a}/{addr['prefixlen']}", strict=False))
        return nets

    def _bridge_address(self, bridge: str) -> ipaddress.IPv4Interface | None:
        found = self.ipr.link_lookup(ifname=bridge)
        if not found:
            return None
        for addr in self.ipr.get_addr(family=2, index=found[0]):
            return ipaddress.IPv4Interface(f"{addr.get_attr('IFA_ADDRESS')}/{addr['prefixlen']}")
        return None

    def _setup_default_network(self) -> None:
        o = self.opts
        row = self.store.network(DEFAULT_NETWORK)
        ours = {r["bridge"] for r in self.store.networks()} | {o.bridge}
        taken = self._host_networks(ours) + [
            ipaddress.IPv4Network(r["subnet"]) for r in self.store.networks() if r["name"] != DEFAULT_NETWORK
        ]
        if o.bip:
            iface = ipaddress.IPv4Interface(o.bip)
            clash = subnet.overlaps(iface.network, taken)
            if clash is not None:
                raise InvalidParameter(f"bip {o.bip} overlaps {clash}, already routed on this host")
            net, gateway, ip_range = iface.network, str(iface.ip), o.fixed_cidr
            how = "from option bip"
        elif (
            row is not None
            and row["bridge"] == o.bridge
            and subnet.overlaps(ipaddress.IPv4Network(row["subnet"]), taken) is None
        ):
            net, gateway, ip_range = ipaddress.IPv4Network(row["subnet"]), row["gateway"], row["ip_range"]
            how = "kept from the previous run"
        elif (existing := self._bridge_address(o.bridge)) is not None:
            net, gateway, ip_range = existing.network, str(existing.ip), ""
            how = "adopted from the existing bridge"
        else:
            net = subnet.choose(CANDIDATES, taken)
            if net is None:
                raise InvalidParameter(
                    "no free subnet for the default bridge: every candidate overlaps a host route; set option bip"
                )
            gateway, ip_range, how = str(net.network_address + 1), "", "chosen automatically"
        if row is not None and row["subnet"] != str(net):
            held = self.store.endpoints(network=DEFAULT_NETWORK)
            if held:
                log.warning(
                    "default bridge subnet changes from %s to %s: %d endpoint(s) get new addresses",
                    row["subnet"],
                    net,
                    len(held),
                )
                self.store.execute("DELETE FROM endpoints WHERE network = ? AND active = 0", DEFAULT_NETWORK)
        self.store.upsert_network(
            name=DEFAULT_NETWORK,
            id=row["id"] if row else secrets.token_hex(32),
            bridge=o.bridge,
            subnet=str(net),
            gateway=gateway,
            ip_range=ip_range,
            mtu=o.mtu,
            internal=0,
            builtin=1,
            created=row["created"] if row else iso_now(),
            options=json.dumps(
                {
                    "com.docker.network.bridge.default_bridge": "true",
                    "com.docker.network.bridge.enable_icc": str(o.icc).lower(),
                    "com.docker.network.bridge.enable_ip_masquerade": str(o.ip_masq).lower(),
                    "com.docker.network.bridge.host_binding_ipv4": o.host_ip,
                    "com.docker.network.bridge.name": o.bridge,
                    "com.docker.network.driver.mtu": str(o.mtu),
                }
            ),
        )
        log.info("default bridge %s: subnet %s, gateway %s (%s)", o.bridge, net, gateway, how)
        self.subnet_origin = how

    def _net_ctx(self, row) -> NetworkContext:
        return NetworkContext(
            ipr=self.ipr,
            name=row["name"],
            bridge=row["bridge"],
            subnet=row["subnet"],
            gateway=row["gateway"],
            mtu=row["mtu"],
            ip_forward=self.opts.ip_forward,
            subnet6=row["subnet6"],
            gateway6=row["gateway6"],
        )

    def _setup_network(self, row) -> NetworkContext:
        ctx = self._net_ctx(row)
        steps.run(steps.NETWORK, ctx)
        return ctx

    def _bridge_index(self, bridge: str) -> int:
        found = self.ipr.link_lookup(ifname=bridge)
        if not found:
            raise System(f"bridge {bridge} has disappeared; restart the daemon to re-create it")
        return found[0]

    def _table_spec(self, row) -> firewall.TableSpec:
        mappings = []
        for p in self.store.ports(network=row["name"]):
            ep = self.store.endpoint(p["container_id"], row["name"])
            if ep is None or not (ep["active"] or p["container_id"] in self._pending):
                continue
            mappings.append(firewall.Mapping(p["proto"], p["host_ip"], p["host_port"], ep["ip"], p["container_port"]))
        others = [r["bridge"] for r in self.store.networks() if r["name"] != row["name"]]
        options = json.loads(row["options"] or "{}")
        return firewall.TableSpec(
            name=self.fw.table_name(self.opts.table_prefix, row["bridge"]),
            bridge=row["bridge"],
            subnet=row["subnet"],
            masquerade=options.get("com.docker.network.bridge.enable_ip_masquerade", "true") == "true",
            icc=options.get("com.docker.network.bridge.enable_icc", "true") == "true",
            internal=bool(row["internal"]),
            mappings=mappings,
            isolate_from=others,
        )

    def _apply_firewall(self, network: str | None = None) -> None:
        rows = self.store.networks() if network is None else [self.store.network(network)]
        for row in rows:
            if row is not None:
                self.fw.apply(self._table_spec(row))
        tables = sorted({self.fw.table_name(self.opts.table_prefix, r["bridge"]) for r in self.store.networks()})
        if network is None:
            for stale in set(self.store.get_meta("tables", [])) - set(tables):
                self._delete_rules(stale)
        self.store.set_meta("tables", tables)

    @staticmethod
    def _delete_rules(recorded: str) -> None:
        """Delete a table or chain set we recorded, with the backend that made it."""
        try:
            firewall.backend_of(recorded).delete(recorded)
        except (System, DriverNotSupported) as exc:
            log.warning("cannot delete stale firewall rules %s: %s", recorded, exc)

    # ------------------------------------------------------------------ reconcile
    def _reconcile(self) -> None:
        """After a (possibly unclean) stop: keep what still works, delete the rest."""
        keep: set[str] = set()
        for ep in self.store.endpoints(active=True):
            alive = core_netns.path_of(ep["netns"]).exists() and bool(self.ipr.link_lookup(ifname=ep["veth"]))
            if alive:
                keep.add(ep["veth"])
                for p in self.store.ports(container_id=ep["container_id"], network=ep["network"]):
                    try:
                        self.reservations.bind(p["proto"], p["host_ip"], p["host_port"])
                    except OSError as exc:
                        log.warning(
                            "cannot re-reserve %s:%d/%s of %s: %s (the mapping itself is restored)",
                            p["host_ip"],
                            p["host_port"],
                            p["proto"],
                            ep["container_id"][:12],
                            exc,
                        )
            else:
                log.info("endpoint of %s on %s is gone: releasing it", ep["container_id"][:12], ep["network"])
                self._teardown(ep)
        # leaked veths: any veth enslaved to one of our bridges that no live endpoint owns
        for row in self.store.networks():
            try:
                index = self._bridge_index(row["bridge"])
            except System:
                continue
            for link in self.ipr.get_links():
                if link.get_attr("IFLA_MASTER") == index and link.get_attr("IFLA_IFNAME") not in keep:
                    name = link.get_attr("IFLA_IFNAME")
                    log.info("deleting leaked interface %s on %s", name, row["bridge"])
                    try:
                        self.ipr.link("del", index=link["index"])
                    except NetlinkError:
                        pass
        self._apply_firewall()

    def _teardown(self, ep) -> None:
        """Delete an endpoint's veth and the container's namespace; keep its allocations."""
        self._unreserve_ports(ep["container_id"])
        try:
            found = self.ipr.link_lookup(ifname=ep["veth"])
            if found:
                self.ipr.link("del", index=found[0])
        except NetlinkError as exc:
            if exc.code != 19:
                log.warning("deleting %s: %s", ep["veth"], exc)
        if ep["netns"]:
            try:
                nsutil.remove(ep["netns"])
            except OSError as exc:
                log.warning("removing namespace %s: %s", ep["netns"], exc)
        self.store.execute(
            "UPDATE endpoints SET active = 0 WHERE container_id = ? AND network = ?", ep["container_id"], ep["network"]
        )

    # ------------------------------------------------------------------ ports
    def _reserve_ports(self, ctx: EndpointContext) -> None:
        """Allocate host ports for ``ctx.wanted`` (keeping those held from the last start) and bind them."""
        cid, network = ctx.container_id, ctx.network
        previous = {r["spec"]: r for r in self.store.ports(container_id=cid, network=network)}
        low, high = self.opts.ports
        result: list[dict] = []
        bound: list[tuple[str, str, int]] = []
        try:
            for want in ctx.wanted:
                port = None
                held = previous.pop(want.spec, None)
                candidates: list[int]
                if held is not None:
                    candidates = [held["host_port"]]
                elif not want.auto:
                    candidates = list(range(want.low, want.high + 1))
                else:
                    candidates = []
                last_error: Exception | None = None
                for candidate in candidates:
                    port, last_error = self._try_port(ctx, want, candidate, own=held is not None)
                    if port is not None:
                        break
                if port is None and (want.auto or want.low != want.high) and (held is None or want.auto):
                    start = self.store.cursor("*", "port", low)
                    if not low <= start <= high:
                        start = low
                    rng = range(want.low, want.high + 1) if not want.auto else None
                    span = (high - low + 1) if rng is None else len(rng)
                    for step in range(span):
                        candidate = (low + (start - low + step) % span) if rng is None else rng[step]
                        port, err = self._try_port(ctx, want, candidate, own=False)
                        if port is not None:
                            if rng is None:
                                self.store.set_cursor("*", "port", candidate + 1 if candidate < high else low)
                            break
                        last_error = last_error or err
                    if port is None and want.auto:
                        raise Conflict(f"no free host port in {low}-{high} for {want.container_port}/{want.proto}")
                if port is None:
                    raise last_error or Conflict(f"cannot publish {want.spec}")
                bound.append((want.proto, want.host_ip, port))
                result.append(
                    {
                        "proto": want.proto,
                        "container_port": want.container_port,
                        "host_ip": want.host_ip,
                        "host_port": port,
                        "auto": int(want.auto),
                        "spec": want.spec,
                    }
                )
            with self.store.transaction() as tx:
                tx.execute("DELETE FROM ports WHERE container_id = ? AND network = ?", cid, network)
                for m in result:
                    tx.execute(
                        "INSERT INTO ports (container_id, network, proto, container_port, host_ip, host_port,"
                        " auto, spec) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        cid,
                        network,
                        m["proto"],
                        m["container_port"],
                        m["host_ip"],
                        m["host_port"],
                        m["auto"],
                        m["spec"],
                    )
        except BaseException:
            for key in bound:
                self.reservations.release(*key)
            raise
        ctx.mappings = result

    def _try_port(
        self, ctx: EndpointContext, want: ports.Wanted, port: int, own: bool
    ) -> tuple[int | None, Exception | None]:
        """Bind ``port`` for ``want`` unless another container of ours holds it."""
        for row in self.store.query(
            "SELECT container_id, host_ip FROM ports WHERE proto = ? AND host_port = ?", want.proto, port
        ):
            if row["container_id"] == ctx.container_id:
                continue
            if "0.0.0.0" in (row["host_ip"], want.host_ip) or row["host_ip"] == want.host_ip:
                return None, ports.allocated_error(ctx.endpoint_name, want.host_ip, port)
        try:
            self.reservations.bind(want.proto, want.host_ip, port)
        except OSError as exc:
            return None, ports.bind_error(ctx.endpoint_name, want.proto, want.host_ip, port, exc)
        return port, None

    def _unreserve_ports(self, container_id: str) -> None:
        for p in self.store.ports(container_id=container_id):
            self.reservations.release(p["proto"], p["host_ip"], p["host_port"])

    # ------------------------------------------------------------------ hooks
    @hookimpl
    def network_prepare(self, request: NetworkRequest) -> NetworkAttachment:
        mode = request.mode or "default"
        if mode == "host":
            return NetworkAttachment(netns=None, settings=self._simple_settings("host", None))
        if mode == "none":
            path = self._loopback_only(request.container_id)
            return NetworkAttachment(netns=path, settings=self._simple_settings("none", path))
        if mode.startswith("container:"):
            shared = request.shared_netns
            if shared is None or not Path(shared).exists():
                raise Conflict(f"cannot join network of a non running container: {mode.partition(':')[2]}")
            return NetworkAttachment(netns=Path(shared), settings=self._simple_settings("container", Path(shared)))
        network = DEFAULT_NETWORK if mode in DEFAULT_MODES else self._network_row(mode)["name"]
        with self.lock:
            start = time.perf_counter()
            path = self._prepare_unlocked(request, network)
            self.timings["prepare"] = time.perf_counter() - start
            return NetworkAttachment(
                netns=path, settings=self._settings_unlocked(request.container_id), dns=self._resolver_for(network)
            )

    @staticmethod
    def _loopback_only(container_id: str) -> Path:
        name = core_netns.name_for(container_id)
        try:
            path = nsutil.create(name)
            with nsutil.entered(path):
                ns = IPRoute()
            with ns:
                ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")
        except (OSError, NetlinkError) as exc:
            raise System(f"cannot create network namespace {name}: {exc}") from None
        return path

    def _prepare_unlocked(self, request: NetworkRequest, network: str, ifname: str = "eth0") -> Path:
        cid = request.container_id
        row = self.store.network(network)
        name = core_netns.name_for(cid)
        wanted = request.endpoint
        existing = self.store.endpoint(cid, network)
        if existing is not None and existing["active"]:
            if core_netns.path_of(existing["netns"]).exists() and self.ipr.link_lookup(ifname=existing["veth"]):
                return core_netns.path_of(existing["netns"])  # already prepared: idempotent
            self._teardown(existing)
        veth, peer = _veth_names(cid, network)
        if existing is None:
            self._check_fixed(row, wanted)
            aux = list(json.loads(row["aux"] or "{}").values())
            with self.store.transaction() as tx:
                if wanted.ipv4_address:
                    ip = ipam.reserve(tx, network, row["subnet"], row["gateway"], wanted.ipv4_address, aux)
                else:
                    ip = ipam.allocate(tx, network, row["subnet"], row["gateway"], row["ip_range"], aux)
                ip6 = ""
                if row["subnet6"]:
                    if wanted.ipv6_address:
                        ip6 = ipam.reserve(
                            tx, network, row["subnet6"], row["gateway6"], wanted.ipv6_address, aux, kind="ip6"
                        )
                    else:
                        ip6 = ipam.allocate(
                            tx, network, row["subnet6"], row["gateway6"], row["ip_range6"], aux, kind="ip6"
                        )
                ipam_config = {
                    k: v
                    for k, v in (
                        ("IPv4Address", wanted.ipv4_address),
                        ("IPv6Address", wanted.ipv6_address),
                        ("LinkLocalIPs", wanted.link_local_ips),
                    )
                    if v
                }
                tx.execute(
                    "INSERT INTO endpoints (container_id, network, ip, mac, veth, ifname, netns, active, name,"
                    " aliases, endpoint_id, ip6, link_local, ipam)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?)",
                    cid,
                    network,
                    ip,
                    wanted.mac_address.lower() or ipam.mac_for(ip),
                    veth,
                    ifname,
                    name,
                    request.name.lstrip("/"),
                    json.dumps(request.aliases),
                    secrets.token_hex(32),
                    ip6,
                    json.dumps(wanted.link_local_ips),
                    json.dumps(ipam_config or None),
                )
            existing = self.store.endpoint(cid, network)
        net = ipaddress.IPv4Network(row["subnet"])
        host_ip = (
            json.loads(row["options"] or "{}").get("com.docker.network.bridge.host_binding_ipv4") or self.opts.host_ip
        )
        ctx = EndpointContext(
            driver=self,
            ipr=self.ipr,
            container_id=cid,
            network=network,
            endpoint_name=f"{request.name or cid[:12]} ({existing['endpoint_id'][:12]})",
            netns_name=name,
            veth=veth,
            peer=peer,
            ifname=existing["ifname"],
            ip=existing["ip"],
            mac=existing["mac"],
            prefixlen=net.prefixlen,
            gateway=row["gateway"],
            mtu=row["mtu"],
            bridge_index=self._bridge_index(row["bridge"]),
            default_route=existing["ifname"] == "eth0" and not row["internal"],
            wanted=ports.wanted(request.port_bindings, request.exposed_ports, request.publish_all, host_ip),
            ip6=existing["ip6"],
            prefixlen6=ipaddress.ip_network(row["subnet6"]).prefixlen if row["subnet6"] else 0,
            gateway6=row["gateway6"],
            link_local=json.loads(existing["link_local"] or "[]"),
        )
        self.store.execute(
            "UPDATE endpoints SET name = ?, aliases = ?, netns = ?, dns = ? WHERE container_id = ? AND network = ?",
            request.name.lstrip("/"),
            json.dumps(request.aliases),
            name,
            json.dumps(list(getattr(request, "dns", None) or [])),
            cid,
            network,
        )
        self._exposed[cid] = ports.exposed_keys(request.port_bindings, request.exposed_ports)
        self.store.set_meta(f"exposed:{cid}", self._exposed[cid])
        timings: dict[str, float] = {}
        steps.run(steps.ENDPOINT, ctx, timings)
        self.store.execute("UPDATE endpoints SET active = 1 WHERE container_id = ? AND network = ?", cid, network)
        self._pending.discard(cid)
        self.timings.update(timings)
        return ctx.netns_path

    @staticmethod
    def _check_fixed(row, wanted) -> None:
        """Fixed addresses only where the user chose the subnet, as Docker allows them."""
        if (wanted.ipv4_address and not row["user_subnet"]) or (wanted.ipv6_address and not row["subnet6"]):
            raise InvalidParameter(
                "user specified IP address is supported only when connecting to networks with user configured subnets"
            )
        if wanted.mac_address and not _MAC.match(wanted.mac_address):
            raise InvalidParameter(f"invalid MAC address: {wanted.mac_address}")
        for address in wanted.link_local_ips:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise InvalidParameter(f"invalid link-local IP address: {address}") from None

    @hookimpl
    def network_release(self, container_id: str) -> bool:
        """Stop: delete namespace, veths, reservations and rules; keep address and ports."""
        with self.lock:
            endpoints = self.store.endpoints(container_id=container_id, active=True)
            had_ports = bool(self.store.ports(container_id=container_id))
            for ep in endpoints:
                self._teardown(ep)
            try:
                nsutil.remove(core_netns.name_for(container_id))  # mode none, or a half-made one
            except OSError as exc:
                raise System(f"cannot remove network namespace of {container_id[:12]}: {exc}") from None
            if had_ports and endpoints:
                for network in {ep["network"] for ep in endpoints}:
                    self._apply_firewall(network)
        return True

    @hookimpl(optionalhook=True)
    def network_remove(self, container_id: str) -> bool:
        """rm: release, then free the container's addresses and host ports.  Idempotent."""
        with self.lock:
            self.network_release(container_id)
            with self.store.transaction() as tx:
                tx.execute("DELETE FROM ports WHERE container_id = ?", container_id)
                tx.execute("DELETE FROM endpoints WHERE container_id = ?", container_id)
                tx.execute("DELETE FROM meta WHERE key = ?", f"exposed:{container_id}")
            self._exposed.pop(container_id, None)
        return True

    @hookimpl
    def network_settings(self, container_id: str) -> dict:
        with self.lock:
            return self._settings_unlocked(container_id)

    def _settings_unlocked(self, container_id: str) -> dict:
        endpoints = self.store.endpoints(container_id=container_id, active=True)
        if not endpoints:
            path = core_netns.path_of(core_netns.name_for(container_id))
            return self._simple_settings("none", path) if path.exists() else self._simple_settings("host", None)
        networks = {}
        exposed = self._exposed.get(container_id) or self.store.get_meta(f"exposed:{container_id}", [])
        port_map: dict[str, list[dict] | None] = dict.fromkeys(exposed)
        for p in self.store.ports(container_id=container_id):
            port_map.setdefault(f"{p['container_port']}/{p['proto']}", None)
            port_map[f"{p['container_port']}/{p['proto']}"] = (
                port_map[f"{p['container_port']}/{p['proto']}"] or []
            ) + [{"HostIp": p["host_ip"], "HostPort": str(p["host_port"])}]
        top = {"Bridge": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "MacAddress": "", "EndpointID": ""}
        for ep in endpoints:
            row = self.store.network(ep["network"])
            prefix = ipaddress.IPv4Network(row["subnet"]).prefixlen
            aliases = json.loads(ep["aliases"] or "[]")
            prefix6 = ipaddress.IPv6Network(row["subnet6"]).prefixlen if row["subnet6"] and ep["ip6"] else 0
            networks[ep["network"]] = {
                "IPAMConfig": json.loads(ep["ipam"] or "null"),
                "Links": None,
                "Aliases": None if ep["network"] == DEFAULT_NETWORK else ([container_id[:12]] + aliases),
                "NetworkID": row["id"],
                "EndpointID": ep["endpoint_id"],
                "Gateway": row["gateway"],
                "IPAddress": ep["ip"],
                "IPPrefixLen": prefix,
                "IPv6Gateway": row["gateway6"] if ep["ip6"] else "",
                "GlobalIPv6Address": ep["ip6"],
                "GlobalIPv6PrefixLen": prefix6,
                "MacAddress": ep["mac"],
                "DriverOpts": None,
            }
            if ep["network"] == DEFAULT_NETWORK:
                top = {
                    "Bridge": row["bridge"],
                    "Gateway": row["gateway"],
                    "IPAddress": ep["ip"],
                    "IPPrefixLen": prefix,
                    "MacAddress": ep["mac"],
                    "EndpointID": ep["endpoint_id"],
                }
        path = core_netns.path_of(endpoints[0]["netns"])
        return {
            **top,
            "SandboxID": hashlib.sha256(str(path).encode()).hexdigest(),
            "SandboxKey": str(path),
            "HairpinMode": False,
            "Ports": port_map,
            "Networks": networks,
        }

    @staticmethod
    def _simple_settings(network: str, path: Path | None) -> dict:
        endpoint = empty_endpoint()
        return {
            "SandboxKey": str(path) if path else "",
            "Ports": {},
            "Networks": {} if network == "container" else {network: endpoint},
        }

    @hookimpl
    def network_status(self) -> list[tuple[str, str]]:
        row = self.store.network(DEFAULT_NETWORK)
        serving = self.dns.serving() if self.dns is not None else {}
        return [
            ("Network Driver", "bridge"),
            ("Bridge", row["bridge"]),
            ("Bridge Subnet", f"{row['subnet']} ({self.subnet_origin})"),
            ("Bridge Gateway", row["gateway"]),
            ("NAT", self.fw.describe(self.fw.table_name(self.opts.table_prefix, row["bridge"]))),
            ("Port Mapping", "DNAT + route_localnet (no userland proxy)"),
            ("User Networks", str(len(self.store.networks()) - 1)),
            (
                "Embedded DNS",
                (
                    f"{len(serving)} resolver(s) on the gateways of user networks"
                    if serving
                    else "on"
                    if self.opts.embedded_dns
                    else "off"
                ),
            ),
        ]

    @hookimpl(optionalhook=True)
    def network_cleanup(self) -> bool:
        """Daemon shutdown: drop reservations; remove the rules unless running containers still use them."""
        with self.lock:
            active = self.store.endpoints(active=True)
            if not active or not self.opts.keep_rules:
                for table in self.store.get_meta("tables", []):
                    self._delete_rules(table)
                self.store.set_meta("tables", [])
            else:
                log.info("keeping NAT rules for %d running container(s)", len(active))
            self._stop_resolvers()
            self.reservations.close()
        return True

    def close(self) -> None:
        """Release process resources (sockets, netlink, db, resolvers) without touching the host."""
        self._stop_resolvers()
        self.reservations.close()
        try:
            self.ipr.close()
        finally:
            self.store.close()

    # ------------------------------------------------------------------ user-defined networks
    def _network_row(self, ref: str):
        row = self.store.network(ref)
        if row is None:
            matches = [r for r in self.store.networks() if r["id"] == ref or r["id"].startswith(ref)]
            if len(matches) == 1:
                return matches[0]
            if ref in ("none", "host"):
                raise InvalidParameter(f"network {ref} is a predefined mode here, not a network")
            raise NotFound(f"network {ref} not found")
        return row

    @hookimpl(optionalhook=True)
    def network_create(self, name: str, options: dict) -> dict:
        """``POST /networks/create``: a new bridge, subnet(s) and table.  ``options`` is the request body
        the core checked (``IPAM.Config`` with at most one IPv4 and one IPv6 pool, ``EnableIPv6``,
        ``Internal``, ``Attachable``, ``Options``, ``Labels``).  Returns the network's inspect dict."""
        with self.lock:
            if name in PREDEFINED:
                raise Forbidden(f"{name} is a pre-defined network and cannot be created")
            if self.store.network(name) is not None:
                raise Conflict(f"network with name {name} already exists")
            pools = (options.get("IPAM") or {}).get("Config") or []
            try:
                for pool in pools:
                    for key in ("Subnet", "IPRange"):
                        if pool.get(key):
                            ipaddress.ip_network(pool[key], strict=False)
                    for address in [pool.get("Gateway"), *(pool.get("AuxiliaryAddresses") or {}).values()]:
                        if address:
                            ipaddress.ip_address(address)
            except ValueError as exc:
                raise InvalidParameter(f"invalid IPAM configuration: {exc}") from None
            v4 = next(
                (p for p in pools if p.get("Subnet") and ipaddress.ip_network(p["Subnet"], strict=False).version == 4),
                None,
            )
            v6 = next(
                (p for p in pools if p.get("Subnet") and ipaddress.ip_network(p["Subnet"], strict=False).version == 6),
                None,
            )
            if options.get("EnableIPv6") and v6 is None:
                raise InvalidParameter(
                    "could not find an available, non-overlapping IPv6 address pool among the "
                    "defaults to assign to the network: give one with --subnet"
                )
            net_id = secrets.token_hex(32)
            bridge = (options.get("Options") or {}).get("com.docker.network.bridge.name") or f"dy-{net_id[:12]}"
            self._check_new_bridge(bridge)
            ours = {r["bridge"] for r in self.store.networks()}
            taken = self._host_networks(ours) + [ipaddress.IPv4Network(r["subnet"]) for r in self.store.networks()]
            if v4 is not None:
                net = ipaddress.IPv4Network(v4["Subnet"], strict=False)
                clash = subnet.overlaps(net, taken)
                if clash is not None:
                    raise Conflict(f"Pool overlaps with other one on this address space ({net} overlaps {clash})")
                gateway = v4.get("Gateway") or str(net.network_address + 1)
                ip_range = v4.get("IPRange") or ""
            else:
                net = subnet.choose(CANDIDATES, taken)
                if net is None:
                    raise Conflict(
                        "could not find an available, non-overlapping IPv4 address pool among the "
                        "defaults to assign to the network"
                    )
                gateway, ip_range = str(net.network_address + 1), ""
            subnet6 = gateway6 = ip_range6 = ""
            if v6 is not None:
                net6 = ipaddress.IPv6Network(v6["Subnet"], strict=False)
                for row in self.store.networks():
                    if row["subnet6"] and ipaddress.IPv6Network(row["subnet6"]).overlaps(net6):
                        raise Conflict(
                            f"Pool overlaps with other one on this address space ({net6} overlaps {row['subnet6']})"
                        )
                subnet6, gateway6 = str(net6), v6.get("Gateway") or str(net6.network_address + 1)
                ip_range6 = v6.get("IPRange") or ""
            aux = {**((v4 or {}).get("AuxiliaryAddresses") or {}), **((v6 or {}).get("AuxiliaryAddresses") or {})}
            opts = dict(options.get("Options") or {})
            mtu = int(opts.get("com.docker.network.driver.mtu", self.opts.mtu))
            self.store.upsert_network(
                name=name,
                id=net_id,
                bridge=bridge,
                subnet=str(net),
                gateway=gateway,
                ip_range=ip_range,
                mtu=mtu,
                internal=int(bool(options.get("Internal"))),
                builtin=0,
                created=iso_now(),
                options=json.dumps(opts),
                labels=json.dumps(options.get("Labels") or {}),
                user_subnet=int(v4 is not None),
                aux=json.dumps(aux),
                subnet6=subnet6,
                gateway6=gateway6,
                ip_range6=ip_range6,
                attachable=int(bool(options.get("Attachable"))),
            )
            try:
                self._setup_network(self.store.network(name))
                self._apply_firewall()
            except BaseException:
                self.store.delete_network(name)
                raise
            self._start_resolver(self.store.network(name))
            return self._network_inspect(self.store.network(name))

    def _check_new_bridge(self, bridge: str) -> None:
        """A new network gets a bridge of its own: never the default bridge, another network's, or an
        interface that already exists on the host (``com.docker.network.bridge.name``)."""
        try:
            BridgeOptions(bridge=bridge)
        except ValueError:
            raise InvalidParameter(f"invalid bridge name {bridge!r} (1 to 15 characters, no '/' or space)") from None
        for row in self.store.networks():
            if row["bridge"] == bridge:
                raise Conflict(f"bridge name {bridge} is already used by network {row['name']}")
        if bridge == self.opts.bridge:
            raise Conflict(f"bridge name {bridge} is the default bridge")
        if self.ipr.link_lookup(ifname=bridge):
            raise Conflict(f"interface {bridge} already exists on the host; a network gets a bridge of its own")

    @hookimpl(optionalhook=True)
    def network_delete(self, name: str) -> bool:
        with self.lock:
            row = self._network_row(name)
            if row["builtin"]:
                raise Forbidden(f"{row['name']} is a pre-defined network and cannot be removed")
            users = self.store.endpoints(network=row["name"], active=True)
            if users:
                raise Conflict(
                    f"error while removing network: network {row['name']} id {row['id']} has active endpoints"
                )
            self.store.execute("DELETE FROM ports WHERE network = ?", row["name"])
            self.store.execute("DELETE FROM endpoints WHERE network = ?", row["name"])
            self.store.delete_network(row["name"])
            if self.dns is not None:
                self.dns.remove(row["name"])
            self.fw.delete(self.fw.table_name(self.opts.table_prefix, row["bridge"]))
            if bridge_device.owned(self.ipr, row["bridge"]):  # never a bridge someone else made
                self.ipr.link("del", index=self.ipr.link_lookup(ifname=row["bridge"])[0])
            self._apply_firewall()
        return True

    @hookimpl(optionalhook=True)
    def network_list(self) -> list[dict]:
        with self.lock:
            return [self._network_inspect(r) for r in self.store.networks()]

    @hookimpl(optionalhook=True)
    def network_inspect(self, name: str) -> dict:
        with self.lock:
            return self._network_inspect(self._network_row(name))

    def _network_inspect(self, row) -> dict:
        containers = {}
        prefix = ipaddress.IPv4Network(row["subnet"]).prefixlen
        prefix6 = ipaddress.IPv6Network(row["subnet6"]).prefixlen if row["subnet6"] else 0
        for ep in self.store.endpoints(network=row["name"], active=True):
            containers[ep["container_id"]] = {
                "Name": ep["name"],
                "EndpointID": ep["endpoint_id"],
                "MacAddress": ep["mac"],
                "IPv4Address": f"{ep['ip']}/{prefix}",
                "IPv6Address": f"{ep['ip6']}/{prefix6}" if ep["ip6"] else "",
            }
        aux = json.loads(row["aux"] or "{}")
        pools = []
        for subnet_, gateway, ip_range in (
            (row["subnet"], row["gateway"], row["ip_range"]),
            (row["subnet6"], row["gateway6"], row["ip_range6"]),
        ):
            if not subnet_:
                continue
            pool: dict = {"Subnet": subnet_, "Gateway": gateway}
            if ip_range:
                pool["IPRange"] = ip_range
            mine = {
                k: v for k, v in aux.items() if ipaddress.ip_address(v) in ipaddress.ip_network(subnet_, strict=False)
            }
            if mine:
                pool["AuxiliaryAddresses"] = mine
            pools.append(pool)
        return {
            "Name": row["name"],
            "Id": row["id"],
            "Created": row["created"],
            "Scope": "local",
            "Driver": "bridge",
            "EnableIPv6": bool(row["subnet6"]),
            "IPAM": {"Driver": "default", "Options": None, "Config": pools},
            "Internal": bool(row["internal"]),
            "Attachable": bool(row["attachable"]),
            "Ingress": False,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": False,
            "Containers": containers,
            "Options": json.loads(row["options"] or "{}"),
            "Labels": json.loads(row["labels"] or "{}"),
        }

    @hookimpl(optionalhook=True)
    def network_connect(
        self, container_id: str, network: str, aliases: list[str], endpoint: EndpointRequest | None = None
    ) -> dict:
        """Attach a running container to one more network (``ethN``).  Returns its settings."""
        with self.lock:
            row = self._network_row(network)
            primary = self.store.endpoints(container_id=container_id, active=True)
            path = core_netns.path_of(core_netns.name_for(container_id))
            if not path.exists():
                raise Conflict(f"container {container_id[:12]} is not running")
            if (
                self.store.endpoint(container_id, row["name"]) is not None
                and self.store.endpoint(container_id, row["name"])["active"]
            ):
                raise Conflict(f"endpoint with name {container_id[:12]} already exists in network {row['name']}")
            ifname = f"eth{len(primary)}"
            existing = self.store.endpoint(container_id, row["name"])
            if existing is not None:
                self.store.execute(
                    "UPDATE endpoints SET ifname = ? WHERE container_id = ? AND network = ?",
                    ifname,
                    container_id,
                    row["name"],
                )
            name = primary[0]["name"] if primary else ""
            dns = json.loads(primary[0]["dns"] or "[]") if primary else []  # the resolver's upstream: --dns
            request = NetworkRequest(
                container_id=container_id,
                mode=row["name"],
                name=name,
                aliases=aliases,
                dns=dns,
                endpoint=endpoint or EndpointRequest(aliases=aliases),
            )
            self._prepare_unlocked(request, row["name"], ifname=ifname)
            return self._settings_unlocked(container_id)

    @hookimpl(optionalhook=True)
    def network_resolvers(self, container_id: str) -> list[str]:
        """The embedded resolver a running container should ask: that of its first user network that
        has one (it answers for all the container's networks).  [] when none of them has one."""
        if self.dns is None:
            return []
        serving = self.dns.serving()
        for ep in sorted(self.store.endpoints(container_id=container_id, active=True), key=lambda e: e["ifname"]):
            if ep["network"] != DEFAULT_NETWORK and serving.get(ep["network"]):
                return [serving[ep["network"]]]
        return []

    @hookimpl(optionalhook=True)
    def network_disconnect(self, container_id: str, network: str) -> bool:
        with self.lock:
            row = self._network_row(network)
            ep = self.store.endpoint(container_id, row["name"])
            if ep is None:
                raise NotFound(f"container {container_id[:12]} is not connected to network {row['name']}")
            for p in self.store.ports(container_id=container_id, network=row["name"]):
                self.reservations.release(p["proto"], p["host_ip"], p["host_port"])
            try:
                found = self.ipr.link_lookup(ifname=ep["veth"])
                if found:
                    self.ipr.link("del", index=found[0])
            except NetlinkError:
                pass
            self.store.execute("DELETE FROM ports WHERE container_id = ? AND network = ?", container_id, row["name"])
            self.store.execute(
                "DELETE FROM endpoints WHERE container_id = ? AND network = ?", container_id, row["name"]
            )
            self._apply_firewall(row["name"])
        return True

    # ------------------------------------------------------------------ embedded DNS (dns.py)
    def _start_resolvers(self) -> None:
        for row in self.store.networks():
            if not row["builtin"]:
                self._start_resolver(row)

    def _start_resolver(self, row) -> None:
        """Serve ``row``'s names on its gateway; a failure leaves the network without names, not broken."""
        if not self.opts.embedded_dns or row["builtin"]:
            return
        if self.dns is None:
            try:
                from . import dns
            except ImportError as exc:  # dnslib missing: networks work, names do not
                log.warning("no embedded DNS for user networks: %s (pip install dnslib)", exc)
                return
            self.dns = dns.DnsServer(self)
        try:
            self.dns.add(row["name"], row["gateway"])
            log.info("embedded DNS of network %s on %s:53", row["name"], row["gateway"])
        except OSError as exc:
            log.warning(
                "no embedded DNS for network %s: cannot listen on %s:53: %s (its containers use the host's resolvers)",
                row["name"],
                row["gateway"],
                exc,
            )

    def _stop_resolvers(self) -> None:
        server, self.dns = self.dns, None
        if server is not None:
            server.close()

    def _resolver_for(self, network: str) -> list[str]:
        """Nameservers a container whose primary network is ``network`` should use ([] = the host's)."""
        if network == DEFAULT_NETWORK or self.dns is None:
            return []
        address = self.dns.serving().get(network)
        return [address] if address else []

    # The resolver's directory: called from its thread, reads the store only (no driver lock).
    def dns_scope(self, network: str, client_ip: str) -> list[str] | None:
        row = self.store.one(
            "SELECT container_id FROM endpoints WHERE network = ? AND ip = ? AND active = 1", network, client_ip
        )
        if row is None:
            return None
        return [
            ep["network"]
            for ep in self.store.endpoints(container_id=row["container_id"], active=True)
            if ep["network"] != DEFAULT_NETWORK
        ]

    @staticmethod
    def _dns_names(ep) -> set[str]:
        names = {ep["name"].lstrip("/"), ep["container_id"][:12], *json.loads(ep["aliases"] or "[]")}
        names = {n.lower().rstrip(".") for n in names if n}
        return names | {f"{n}.{ep['network'].lower()}" for n in names}

    def dns_addresses(self, networks: list[str], name: str) -> list[str] | None:
        """IPv4 and IPv6 addresses of ``name`` on ``networks`` (the resolver answers A and AAAA)."""
        found: list[str] = []
        for network in networks:
            for ep in self.store.endpoints(network=network, active=True):
                if name in self._dns_names(ep):
                    found += [ip for ip in (ep["ip"], ep["ip6"]) if ip and ip not in found]
        return found or None

    def dns_name_of(self, networks: list[str], ip: str) -> str | None:
        for network in networks:
            row = self.store.one("SELECT * FROM endpoints WHERE network = ? AND ip = ? AND active = 1", network, ip)
            if row is not None:
                return f"{row['name'].lstrip('/') or row['container_id'][:12]}.{network}"
        return None

    def dns_upstream(self, network: str, client_ip: str) -> list[tuple[str, int]]:
        from . import dns

        row = self.store.network(network)
        if row is None or row["internal"]:
            return []
        ep = self.store.one("SELECT dns FROM endpoints WHERE network = ? AND ip = ? AND active = 1", network, client_ip)
        servers: list[tuple[str, int]] = []
        if ep is not None and ep["dns"] and json.loads(ep["dns"]):
            servers = dns.parse_servers(",".join(json.loads(ep["dns"])))
        elif self.opts.dns_upstream:
            servers = dns.parse_servers(self.opts.dns_upstream)
        else:
            servers = dns.host_servers()
        ours = set(self.dns.serving().values()) if self.dns is not None else set()
        return [s for s in servers if not (s[0] in ours and s[1] == dns.PORT)]
