"""The iptables firewall backend (option ``firewall=iptables``, ``iptables-nft`` or ``iptables-legacy``).

Same rules as the nftables backend (firewall.py), in chains of our own, one
set per bridge, named after the bridge (``<PREFIX>-<bridge>``, PREFIX being the
option ``table_prefix`` in capitals, ``DOCKYARD`` by default)::

    nat     DOCKYARD-<br>       DNAT of published ports      <- PREROUTING, OUTPUT (-m addrtype --dst-type LOCAL)
    nat     DOCKYARD-<br>-PST   masquerade (subnet leaving;  <- POSTROUTING
                                127/8 into the bridge; hairpin)
    raw     DOCKYARD-<br>       drop 127/8 arriving from     <- PREROUTING -i <br>
                                the bridge (route_localnet guard)
    filter  DOCKYARD-<br>       isolation, icc, internal;    <- FORWARD
                                then ACCEPT of the bridge's own traffic

Everything is written with ONE ``iptables-restore --noflush`` run (tables
``nat``, ``raw`` and ``filter``, each committed atomically by the kernel): a
chain declared in the input (``:CHAIN - [0:0]``) is created or *flushed*, the
jumps to our chains found in ``iptables-save`` are deleted (``-D``) and
inserted again (``-I``, first position) in the same transaction, so a re-apply
never duplicates a jump, and stale rules of a crashed daemon vanish.  Nothing
but our chains and the jump rules into them is written; other rules of the
built-in chains are never touched.

Unlike the nftables backend, the filter chain ends by ACCEPTing the bridge's
own traffic (outgoing, replies, published ports), as Docker does: with
iptables, the host's FORWARD policy (``DROP`` where Docker is installed) would
otherwise drop it, and our chain is jumped to from that very FORWARD chain.

Which iptables runs: ``iptables`` (Debian's alternative, nft or legacy), or the
named variant.  The restore waits for the xtables lock (``-w``).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess

from dockyard.errors import DriverNotSupported, System

from .firewall import TableSpec

MAX_CHAIN = 28  # XT_EXTENSION_MAXNAMELEN - 1
TABLES = ("nat", "raw", "filter")
HOOKS = {"nat": ("PREROUTING", "OUTPUT", "POSTROUTING"), "raw": ("PREROUTING",), "filter": ("FORWARD",)}


class IptablesBackend:
    """One variant of iptables.  ``name`` is what the driver records in its state."""

    def __init__(self, command: str = "iptables") -> None:
        if command not in ("iptables", "iptables-nft", "iptables-legacy"):
            raise ValueError(f"unknown iptables variant {command!r}")
        self.command = command
        self.kind = command

    # -- naming ---------------------------------------------------------------------
    def chain_name(self, prefix: str, bridge: str) -> str:
        base = f"{re.sub(r'[^A-Za-z0-9_]', '_', prefix).upper()}-{bridge}"
        if len(base) + 4 > MAX_CHAIN:
            base = f"{prefix.upper()[:8]}-{hashlib.sha256(bridge.encode()).hexdigest()[:12]}"
        return base

    def table_name(self, prefix: str, bridge: str) -> str:
        """The name recorded in the driver's state: ``<command>:<chain>``."""
        return f"{self.command}:{self.chain_name(prefix, bridge)}"

    @staticmethod
    def _chain(name: str) -> str:
        return name.partition(":")[2] or name

    def check_available(self) -> None:
        for tool in (f"{self.command}-restore", f"{self.command}-save"):
            if shutil.which(tool) is None:
                raise DriverNotSupported("bridge", f"{tool} (package iptables) is not installed")

    def describe(self, name: str) -> str:
        chain = self._chain(name)
        return f"{self.command} chains {chain}, {chain}-PST (nat), {chain} (raw, filter)"

    # -- rendering --------------------------------------------------------------------
    @staticmethod
    def _rules(spec: TableSpec, chain: str) -> dict[str, list[str]]:
        br, post = spec.bridge, f"{chain}-PST"
        nat = [
            f"-I PREROUTING -m addrtype --dst-type LOCAL -j {chain}",
            f"-I OUTPUT -m addrtype --dst-type LOCAL -j {chain}",
            f"-I POSTROUTING -j {post}",
        ]
        for m in sorted(spec.mappings, key=lambda m: (m.proto, m.host_port, m.host_ip)):
            match = "" if m.host_ip in ("", "0.0.0.0") else f"-d {m.host_ip}/32 "
            nat.append(
                f"-A {chain} {match}-p {m.proto} -m {m.proto} --dport {m.host_port} "
                f"-j DNAT --to-destination {m.container_ip}:{m.container_port}"
            )
        nat += [
            f"-A {post} -s 127.0.0.0/8 -o {br} -j MASQUERADE",
            f"-A {post} -s {spec.subnet} -o {br} -m conntrack --ctstate DNAT -j MASQUERADE",
        ]
        if spec.masquerade and not spec.internal:
            nat.append(f"-A {post} -s {spec.subnet} ! -o {br} -j MASQUERADE")
        raw = [f"-I PREROUTING -i {br} -j {chain}", f"-A {chain} -d 127.0.0.0/8 -j DROP"]
        flt = [f"-I FORWARD -j {chain}"]
        # both directions: whichever bridge's chain FORWARD reaches first drops a packet
        # between two of our networks before any ACCEPT below (or of the other chain) can pass it
        for other in sorted(spec.isolate_from):
            flt += [f"-A {chain} -i {br} -o {other} -j DROP", f"-A {chain} -i {other} -o {br} -j DROP"]
        if not spec.icc:
            flt.append(f"-A {chain} -i {br} -o {br} -j DROP")
        if spec.internal:
            flt += [f"-A {chain} -i {br} ! -o {br} -j DROP", f"-A {chain} -o {br} ! -i {br} -j DROP"]
        flt += [
            f"-A {chain} -o {br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            f"-A {chain} -o {br} -m conntrack --ctstate DNAT -j ACCEPT",
            f"-A {chain} -i {br} -j ACCEPT",
        ]
        return {"nat": nat, "raw": raw, "filter": flt}

    @staticmethod
    def _chains(table: str, chain: str) -> list[str]:
        return [chain, f"{chain}-PST"] if table == "nat" else [chain]

    def _jumps(self, saved: dict[str, str], table: str, chains: list[str]) -> list[str]:
        """``-D`` lines for every rule of another chain that jumps to one of ``chains``."""
        out = []
        for line in saved.get(table, "").splitlines():
            words = line.split()
            if (
                len(words) >= 4
                and words[0] == "-A"
                and words[1] not in chains
                and words[-2] == "-j"
                and words[-1] in chains
            ):
                out.append("-D" + line[2:])
        return out

    def render(self, spec: TableSpec, saved: dict[str, str] | None = None) -> str:
        """The ``iptables-restore --noflush`` input that makes our chains exactly ``spec``."""
        chain = self._chain(spec.name)
        rules = self._rules(spec, chain)
        out = []
        for table in TABLES:
            chains = self._chains(table, chain)
            out.append(f"*{table}")
            out += [f":{c} - [0:0]" for c in chains]
            out += self._jumps(saved or {}, table, chains)
            out += rules[table]
            out.append("COMMIT")
        return "\n".join(out) + "\n"

    def render_delete(self, name: str, saved: dict[str, str]) -> str:
        chain = self._chain(name)
        out = []
        for table in TABLES:
            chains = self._chains(table, chain)
            out.append(f"*{table}")
            out += [f":{c} - [0:0]" for c in chains]  # creates a missing one, so that -X cannot fail
            out += self._jumps(saved, table, chains)
            out += [f"-X {c}" for c in chains]
            out.append("COMMIT")
        return "\n".join(out) + "\n"

    # -- running ----------------------------------------------------------------------
    def _save(self) -> dict[str, str]:
        """The current rules, by table, from one ``iptables-save`` run."""
        try:
            result = subprocess.run([f"{self.command}-save"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as exc:
            raise System(f"cannot run {self.command}-save: {exc}") from None
        if result.returncode != 0:
            raise System(f"{self.command}-save failed: {result.stderr.strip()}")
        saved: dict[str, str] = {}
        table = None
        for line in result.stdout.splitlines():
            if line.startswith("*"):
                table = line[1:].strip()
                saved[table] = ""
            elif table is not None and not line.startswith("#"):
                saved[table] += line + "\n"
        return saved

    def _restore(self, script: str) -> None:
        try:
            result = subprocess.run(
                [f"{self.command}-restore", "--noflush", "-w", "10"],
                input=script,
                capture_output=True,
                text=True,
                timeout=60,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise System(f"cannot run {self.command}-restore: {exc}") from None
        if result.returncode != 0:
            raise System(f"{self.command}-restore failed: {result.stderr.strip() or result.stdout.strip()}")

    def apply(self, spec: TableSpec) -> None:
        self._restore(self.render(spec, self._save()))

    def delete(self, name: str) -> None:
        """Remove our chains and the jumps into them; missing ones are fine."""
        self._restore(self.render_delete(name, self._save()))

    def exists(self, name: str) -> bool:
        chain = self._chain(name)
        return any(f":{chain} " in text for text in self._save().values())

    def listing(self, name: str) -> str:
        """Our chains' rules and the jumps into them, as iptables-save prints them."""
        chain = self._chain(name)
        ours = {chain, f"{chain}-PST"}
        out = []
        for table, text in self._save().items():
            for line in text.splitlines():
                words = line.split()
                if len(words) >= 2 and words[0] == "-A" and (words[1] in ours or words[-1] in ours):
                    out.append(f"[{table}] {line}")
        return "\n".join(out) + ("\n" if out else "")

    def count_dnat(self, name: str) -> int:
        return self.listing(name).count("-j DNAT")
