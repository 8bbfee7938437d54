"""Soak: many clients that leave at random moments, against a daemon started as users start it.

    python -m bench.soak [--clients 16] [--minutes 10] [--seed 1] [--storage-driver vfs] [--json FILE]

Starts a daemon with the ``dockyard`` console script (own data root, socket and bridge), a registry
(``python -m dockyard.registry``) holding one image, and three long-running containers: two chatty
ones (one steady, one in bursts, both with rotated logs) and a quiet one.  Then ``--clients``
threads, for ``--minutes``, each pick at random: run (attach, start, wait; with --rm or not),
logs -f, attach, exec, stats, events, export, cp (archive GET and PUT), build, pull, plain
queries, and requests dropped as soon as they are sent (create, start, stop, kill).  Every
stream is cut off at a random moment.  Meanwhile ``/_ping`` is timed every 100 ms and the
daemon's memory and open files are sampled.

Then every container the clients made is removed and the report gives: daemon RSS over time,
``/_ping`` p50/p99/max, answers by status code (connection errors apart), and what is left over
(containers, mounts under the data root, veths on the bridge, network namespaces, shims, and the
daemon's open files against its idle count).  Targets (issue #10): the daemon never dies, no 5xx,
``/_ping`` p99 under 100 ms, RSS growth under 20 MB, nothing left over, open files back to idle.
The exit status is 0 when every target is met.

Whatever ends the run (its end, an error, SIGINT, SIGTERM or SIGHUP) the clean-up runs to its end
(a second signal does not cut it short): the clients stop, the daemon removes every container, the
daemon stops, whatever of this run still lives is killed (conmon and the containers' processes,
found by the data root in their command line and by their ``dockyard/<id>`` cgroup), mounts under
the run's root are unmounted, its network namespaces, cgroups and bridge removed, and only then is
the root deleted: a root that still has a live mount or process is kept and named (exit status 2).
SIGKILL cannot be caught: ``--clean ROOT`` runs that clean-up for a root such a run left.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dockyard.cgroups import cgroup_dir  # noqa: E402
from dockyard.netns import name_for as netns_name  # noqa: E402
from tests.helpers.daemon import (
    DOCKER,
    Daemon,
    bridge_name,
    busybox_rootfs_tar,
    remove_bridge,
    start_daemon,
)
from tests.helpers.probes import cpu_seconds, open_fds, rss_bytes  # noqa: E402
from tests.helpers.registry import push_image, start_registry  # noqa: E402
from tests.helpers.images import random_layer  # noqa: E402

UPGRADE = "Upgrade: tcp\r\nConnection: Upgrade\r\n"
#: times GET /_ping of the daemon (argv 1) and of the reference server (argv 2), in turn, every 50 ms
PINGER = """
import sys, time
from pathlib import Path
from tests.helpers.probes import ping
end = time.monotonic() + float(sys.argv[3])
while time.monotonic() < end:
    for which, path in (("d", sys.argv[1]), ("r", sys.argv[2])):
        try:
            print(which, ping(Path(path), timeout=10), flush=True)
        except (OSError, AssertionError):
            print(which, "fail", flush=True)
        time.sleep(0.05)
"""
#: the reference: an aiohttp server doing nothing but answer /_ping, in a process of its own, so
#: its figures are what this machine's load alone does to a ping
REFERENCE = """
import sys
from aiohttp import web
app = web.Application()
app.router.add_get("/_ping", lambda request: web.Response(text="OK"))
web.run_app(app, path=sys.argv[1], print=None)
"""


class Interrupted(BaseException):
    """A signal asked the harness to stop: the run ends early; the clean-up still runs."""


def _interrupt(signum: int, frame: object) -> None:
    raise Interrupted(signal.Signals(signum).name)


def _hold_on(signum: int, frame: object) -> None:
    print(f"soak: {signal.Signals(signum).name} ignored: cleaning up, wait for it", file=sys.stderr)


class Tally:
    """Answers by status code (and connection errors), thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.codes: collections.Counter[str] = collections.Counter()
        self.ops: collections.Counter[str] = collections.Counter()
        self.server_errors: list[str] = []
        #: a few examples of each 4xx, to tell expected refusals from bugs
        self.refusals: dict[str, list[str]] = collections.defaultdict(list)

    def status(self, op: str, code: int | str, detail: str = "") -> None:
        with self.lock:
            self.codes[str(code)] += 1
            if isinstance(code, int) and code >= 500 and len(self.server_errors) < 20:
                self.server_errors.append(f"{op}: {code} {detail[:200]}")
            if isinstance(code, int) and 400 <= code < 500 and len(self.refusals[str(code)]) < 5:
                self.refusals[str(code)].append(f"{op}: {detail[-160:]}")

    def op(self, name: str) -> None:
        with self.lock:
            self.ops[name] += 1


class Client(threading.Thread):
    def __init__(self, number: int, soak: "Soak", seed: int) -> None:
        super().__init__(name=f"client-{number}", daemon=True)
        self.number = number
        self.soak = soak
        self.rng = random.Random(seed * 1000 + number)
        self.http = httpx.Client(
            transport=httpx.HTTPTransport(uds=str(soak.daemon.socket)), base_url="http://d", timeout=120
        )
        self.counter = 0

    # -- plumbing ---------------------------------------------------------------------------------------

    def call(self, op: str, method: str, path: str, **kw) -> httpx.Response | None:
        try:
            response = self.http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            self.soak.tally.status(op, f"conn:{type(exc).__name__}")
            return None
        self.soak.tally.status(op, response.status_code, response.text)
        return response

    def stream(
        self,
        op: str,
        method: str,
        path: str,
        body: bytes = b"",
        headers: str = "",
        seconds: float | None = None,
        until: bytes | None = None,
        content_type: str = "application/json",
    ) -> bytes:
        """Open a stream, read it for a random time (or until ``until`` shows), then leave."""
        seconds = self.rng.uniform(0, 2.0) if seconds is None else seconds
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(0.2)
        got = b""
        try:
            s.connect(str(self.soak.daemon.socket))
            head = f"{method} {path} HTTP/1.1\r\nHost: d\r\n{headers}"
            if body:
                head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            s.sendall(head.encode() + b"\r\n" + body)
            deadline = time.monotonic() + seconds
            status_seen = False
            while time.monotonic() < deadline:
                try:
                    chunk = s.recv(1 << 16)
                except socket.timeout:
                    continue
                if not chunk:
                    break
                if len(got) < 4096:
                    got += chunk[:4096]
                if not status_seen and b"\r\n" in got:
                    status_seen = True
                    self.soak.tally.status(op, int(got.split(b" ", 2)[1]), got.decode(errors="replace"))
                if until is not None and until in got:
                    break
        except OSError as exc:
            self.soak.tally.status(op, f"conn:{type(exc).__name__}")
        finally:
            s.close()
        return got

    def drop(self, op: str, method: str, path: str, body: bytes = b"") -> None:
        """Send a request and leave at once, without the answer."""
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(str(self.soak.daemon.socket))
            head = f"{method} {path} HTTP/1.1\r\nHost: d\r\n"
            if body:
                head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            s.sendall(head.encode() + b"\r\n" + body)
            time.sleep(self.rng.uniform(0, 0.05))
        except OSError as exc:
            self.soak.tally.status(op, f"conn:{type(exc).__name__}")
        finally:
            s.close()

    def name(self, kind: str) -> str:
        self.counter += 1
        return f"soak-{kind}-{self.number}-{self.counter}"

    # -- operations ---------------------------------------------------------------------------------------

    def op_run(self) -> None:
        cmd = self.rng.choice(
            [
                ["echo", "hello"],
                ["sh", "-c", "yes soak | head -c 300000"],
                ["sleep", "0.5"],
                ["sh", "-c", "echo err >&2; exit 3"],
            ]
        )
        remove = self.rng.random() < 0.5
        created = self.call(
            "run",
            "POST",
            f"/containers/create?name={self.name('run')}",
            json={
                "Image": "busybox",
                "Cmd": cmd,
                "AttachStdout": True,
                "AttachStderr": True,
                "HostConfig": {"AutoRemove": remove},
            },
        )
        if created is None or created.status_code != 201:
            return
        cid = created.json()["Id"]
        attach = threading.Thread(
            target=self.stream,
            args=("run-attach", "POST", f"/containers/{cid}/attach?stream=1&stdout=1&stderr=1"),
            kwargs={"headers": UPGRADE},
        )
        attach.start()
        time.sleep(0.05)
        self.call("run", "POST", f"/containers/{cid}/start")
        if self.rng.random() < 0.5:
            self.stream("run-wait", "POST", f"/containers/{cid}/wait")
        else:
            self.call("run", "POST", f"/containers/{cid}/wait")
        attach.join()
        if not remove:
            self.call("run", "DELETE", f"/containers/{cid}?force=1")

    def op_logs(self) -> None:
        target = self.rng.choice(self.soak.chatty)
        tail = self.rng.choice(["all", "10", "1000"])
        self.stream("logs", "GET", f"/containers/{target}/logs?stdout=1&stderr=1&follow=1&tail={tail}")

    def op_attach(self) -> None:
        target = self.rng.choice(self.soak.chatty)
        self.stream("attach", "POST", f"/containers/{target}/attach?stream=1&stdout=1&stderr=1", headers=UPGRADE)

    def op_exec(self) -> None:
        cmd = self.rng.choice([["sh", "-c", "yes exec | head -c 200000"], ["sleep", "1"], ["ls", "-l", "/bin"]])
        created = self.call(
            "exec",
            "POST",
            f"/containers/{self.soak.quiet}/exec",
            json={"Cmd": cmd, "AttachStdout": True, "AttachStderr": True},
        )
        if created is None or created.status_code != 201:
            return
        self.stream(
            "exec", "POST", f"/exec/{created.json()['Id']}/start", body=b'{"Detach":false,"Tty":false}', headers=UPGRADE
        )

    def op_stats(self) -> None:
        self.stream(
            "stats", "GET", f"/containers/{self.rng.choice(self.soak.chatty)}/stats", seconds=self.rng.uniform(0, 3)
        )

    def op_events(self) -> None:
        self.stream("events", "GET", "/events")

    def op_export(self) -> None:
        self.stream("export", "GET", f"/containers/{self.soak.quiet}/export", seconds=self.rng.uniform(0, 0.5))

    def op_cp(self) -> None:
        if self.rng.random() < 0.5:
            self.stream(
                "cp-get", "GET", f"/containers/{self.soak.quiet}/archive?path=/bin", seconds=self.rng.uniform(0, 0.3)
            )
            return
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            data = os.urandom(self.rng.randrange(1, 200_000))
            info = tarfile.TarInfo(f"cp-{self.number}.bin")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        self.call(
            "cp-put",
            "PUT",
            f"/containers/{self.soak.quiet}/archive?path=/tmp",
            content=buf.getvalue(),
            headers={"Content-Type": "application/x-tar"},
        )

    def op_build(self, seconds: float | None = None) -> None:
        dockerfile = f"FROM busybox\nRUN echo {self.rng.random()} > /stamp && sleep 0.3\nCMD cat /stamp\n".encode()
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo("Dockerfile")
            info.size = len(dockerfile)
            tar.addfile(info, io.BytesIO(dockerfile))
        self.stream(
            "build",
            "POST",
            f"/build?rm=1&forcerm=1&t=soak-build:{self.number}",
            body=buf.getvalue(),
            seconds=self.rng.uniform(0, 6) if seconds is None else seconds,
            until=b"Successfully tagged",
            content_type="application/x-tar",
        )

    def op_pull(self) -> None:
        self.stream(
            "pull", "POST", f"/images/create?fromImage={self.soak.pull_ref}&tag=latest", seconds=self.rng.uniform(0, 3)
        )

    QUERIES = [
        "/containers/json?all=1",
        "/images/json",
        "/info",
        "/version",
        "/containers/{quiet}/json",
        "/volumes",
        "/networks",
        "/containers/{quiet}/top",
        "/containers/{quiet}/changes",
    ]

    def op_query(self, path: str | None = None) -> None:
        path = path or self.rng.choice(self.QUERIES)
        self.call("query", "GET", path.format(quiet=self.soak.quiet))

    def op_drop(self) -> None:
        """State changes whose clients leave before the answer."""
        name = self.name("drop")
        body = json.dumps({"Image": "busybox", "Cmd": ["sleep", "2"]}).encode()
        self.drop("drop-create", "POST", f"/containers/create?name={name}", body)
        time.sleep(0.2)
        self.drop("drop-start", "POST", f"/containers/{name}/start")
        time.sleep(self.rng.uniform(0, 0.5))
        self.drop("drop-stop", "POST", f"/containers/{name}/" + self.rng.choice(["stop?t=1", "kill"]))
        time.sleep(0.3)
        self.call("drop-rm", "DELETE", f"/containers/{name}?force=1")

    OPS = [
        ("run", 4),
        ("logs", 3),
        ("attach", 2),
        ("exec", 3),
        ("stats", 2),
        ("events", 2),
        ("export", 1),
        ("cp", 2),
        ("build", 1),
        ("pull", 1),
        ("query", 4),
        ("drop", 2),
    ]

    def warm_up(self) -> None:
        """Every operation once: what the daemon loads or opens once for good (modules, the build
        cache's database) is then part of the idle figures, not of the growth."""
        for name, _ in self.OPS:
            if self.soak.stopping.is_set():
                return
            if name == "build":
                self.op_build(seconds=60)
            elif name == "query":
                for path in self.QUERIES:
                    self.op_query(path)
            else:
                getattr(self, f"op_{name}")()

    def run(self) -> None:
        names, weights = zip(*self.OPS, strict=True)
        while time.monotonic() < self.soak.deadline and not self.soak.dead.is_set() and not self.soak.stopping.is_set():
            op = self.rng.choices(names, weights)[0]
            self.soak.tally.op(op)
            try:
                getattr(self, f"op_{op}")()
            except Exception as exc:  # noqa: BLE001 - a harness bug must not hide the figures
                self.soak.tally.status(op, f"harness:{type(exc).__name__}")
        self.http.close()


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.root = Path(tempfile.mkdtemp(prefix="dockyard-soak-"))
        self.tally = Tally()
        self.dead = threading.Event()
        #: set when the run is cut short (a signal, an error): clients finish their operation and stop
        self.stopping = threading.Event()
        self.pings: list[float] = []
        self.reference_pings: list[float] = []
        self.reference_socket = self.root / "reference.sock"
        self.reference: subprocess.Popen | None = None
        self.pinger_process: subprocess.Popen | None = None
        #: the threads doing client work (the warm-up's, then the clients): joined at clean-up
        self.workers: list[threading.Thread] = []
        self.ping_failures = 0
        #: (seconds into the run, RSS, open fds, CPU share since the last sample)
        self.samples: list[tuple[float, int, int, float]] = []
        self.deadline = 0.0
        self.chatty: list[str] = []
        self.quiet = ""
        self.pull_ref = ""
        self.daemon: Daemon
        self.registry = None
        #: every container the daemon made (from its event stream): their network namespaces are
        #: told from other daemons' (/run/netns is the host's) by these IDs
        self.container_ids: set[str] = set()
        self.started = time.monotonic()
        self.recorder_end = ""

    # -- set-up ---------------------------------------------------------------------------------------------

    def setup(self) -> None:
        (self.root / "daemon").mkdir()
        self.daemon = start_daemon(
            self.root / "daemon",
            ("--storage-driver", self.args.storage_driver, *(("--debug",) if self.args.debug else ())),
        )
        d = self.daemon
        threading.Thread(target=self.recorder, daemon=True).start()
        self.reference = subprocess.Popen([sys.executable, "-c", REFERENCE, str(self.reference_socket)])
        result = d.dockyard("import", "-", "busybox:latest", input=busybox_rootfs_tar())
        assert result.returncode == 0, result.stderr.decode()
        self.registry = start_registry(self.root / "registry")
        self.pull_ref = f"{self.registry.host}/soak"
        self._push_image(self.pull_ref.split("/", 1)[1], 8 << 20)
        runs = [
            (
                "chatty-steady",
                ["--log-opt", "max-size=1m", "--log-opt", "max-file=3"],
                ["sh", "-c", "i=0; while true; do echo steady line $i; i=$((i+1)); usleep 2000; done"],
            ),
            (
                "chatty-burst",
                ["--log-opt", "max-size=2m", "--log-opt", "max-file=2"],
                ["sh", "-c", "while true; do seq 1 20000; sleep 2; done"],
            ),
            ("quiet", [], ["sleep", "1000000"]),
        ]
        for name, options, cmd in runs:
            result = d.docker("run", "-d", "--name", name, *options, "busybox", *cmd)
            assert result.returncode == 0, result.stderr.decode()
        self.chatty = ["chatty-steady", "chatty-burst"]
        self.quiet = "quiet"

    def _push_image(self, name: str, size: int) -> None:
        assert self.registry is not None
        with httpx.Client(base_url=self.registry.url, timeout=60) as http:
            push_image(http, name, "latest", [random_layer(size)], compresslevel=1)

    # -- watching ---------------------------------------------------------------------------------------------

    def recorder(self) -> None:
        """Follow /events from set-up to the end, noting every container created."""
        transport = httpx.HTTPTransport(uds=str(self.daemon.socket))
        try:
            with httpx.Client(transport=transport, base_url="http://d", timeout=None) as http:
                with http.stream("GET", "/events", params={"filters": json.dumps({"type": ["container"]})}) as r:
                    for line in r.iter_lines():
                        event = json.loads(line)
                        if event.get("Action") == "create":
                            self.container_ids.add(event["Actor"]["ID"])
        except httpx.HTTPError as exc:  # the daemon stopped (the end of the run, or its death: the pinger tells)
            self.recorder_end = f"{time.monotonic() - self.started:.1f}s: {exc!r}"

    def pinger(self) -> None:
        """Time /_ping every 100 ms from a process of its own (this one's threads would add their
        own waits for the interpreter lock to the figures)."""
        seconds = max(0.0, self.deadline - time.monotonic())
        self.pinger_process = subprocess.Popen(
            [sys.executable, "-c", PINGER, str(self.daemon.socket), str(self.reference_socket), str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        out, _ = self.pinger_process.communicate()
        for line in out.splitlines():
            which, value = line.split()
            if value == "fail":
                self.ping_failures += which == "d"
            else:
                (self.pings if which == "d" else self.reference_pings).append(float(value))
        if self.daemon.process.poll() is not None:
            self.dead.set()

    def sampler(self, start: float) -> None:
        pid = self.daemon.process.pid
        last_cpu, last_t = cpu_seconds(pid), time.monotonic()
        while time.monotonic() < self.deadline and not self.dead.is_set():
            try:
                cpu, now = cpu_seconds(pid), time.monotonic()
                self.samples.append((now - start, rss_bytes(pid), open_fds(pid), (cpu - last_cpu) / (now - last_t)))
                last_cpu, last_t = cpu, now
            except (OSError, ZeroDivisionError):
                self.dead.set()
            time.sleep(self.args.sample)

    # -- the run -----------------------------------------------------------------------------------------------

    def run(self) -> dict:
        self.setup()
        d = self.daemon
        pid = d.process.pid
        # a first round of every operation by every client at once: what the daemon sets up once for
        # good (modules, the build cache's database, its worker threads and what drivers keep per
        # thread) belongs to its idle state, not to the growth measured below
        warm = [Client(self.args.clients + n, self, self.args.seed) for n in range(self.args.clients)]
        runners = self.workers = [threading.Thread(target=c.warm_up, daemon=True) for c in warm]
        for t in runners:
            t.start()
        for t in runners:
            t.join()
        for c in warm:
            c.http.close()
        time.sleep(3)
        idle_rss, idle_fds, self.idle_targets = rss_bytes(pid), open_fds(pid), fd_targets(pid)
        self.idle_sockets = socket_inodes(pid)
        start = time.monotonic()
        self.deadline = start + self.args.minutes * 60
        threads = [
            threading.Thread(target=self.pinger, daemon=True),
            threading.Thread(target=self.sampler, args=(start,), daemon=True),
        ]
        self.workers = [Client(n, self, self.args.seed) for n in range(self.args.clients)]
        threads += self.workers
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        alive = d.process.poll() is None
        report: dict = {
            "clients": self.args.clients,
            "minutes": self.args.minutes,
            "alive": alive,
            "ops": dict(self.tally.ops),
            "codes": dict(sorted(self.tally.codes.items())),
            "server_errors": self.tally.server_errors,
            "refusals": dict(self.tally.refusals),
            "ping_failures": self.ping_failures,
        }
        for key, values in (("ping_ms", self.pings), ("reference_ping_ms", self.reference_pings)):
            if values:
                ordered = sorted(values)
                report[key] = {
                    "count": len(ordered),
                    "p50": round(1000 * statistics.median(ordered), 2),
                    "p99": round(1000 * ordered[int(0.99 * (len(ordered) - 1))], 2),
                    "max": round(1000 * ordered[-1], 2),
                }
        if self.pings and self.reference_pings:
            report["ping_p99_vs_reference"] = round(report["ping_ms"]["p99"] / report["reference_ping_ms"]["p99"], 2)
        report["samples"] = {
            "columns": ["s", "rss_mb", "fds", "cpu"],
            "rows": [(round(t), round(rss / 2**20, 1), fds, round(cpu, 2)) for t, rss, fds, cpu in self.samples],
        }
        report["load_average"] = os.getloadavg()
        if alive:
            report.update(self.cleanup_and_count(idle_rss, idle_fds))
        return report

    def cleanup_and_count(self, idle_rss: int, idle_fds: int) -> dict:
        d = self.daemon
        pid = d.process.pid
        http = httpx.Client(transport=httpx.HTTPTransport(uds=str(d.socket)), base_url="http://d", timeout=120)
        keep = {"chatty-steady", "chatty-burst", "quiet"}
        for c in http.get("/containers/json?all=1").json():
            if c["Names"][0].lstrip("/") not in keep:
                http.delete(f"/containers/{c['Id']}?force=1")
        for image in http.get("/images/json").json():
            if "busybox:latest" not in (image.get("RepoTags") or []):
                http.delete(f"/images/{image['Id']}?force=1")
        http.close()  # (its own connection is no leftover)
        # the last streams' threads and the removed containers' watchers wind down
        settle = time.monotonic()
        while open_fds(pid) > idle_fds and time.monotonic() - settle < 10:
            time.sleep(0.2)
        settled_in = round(time.monotonic() - settle, 1)
        end_rss, end_fds = rss_bytes(pid), open_fds(pid)
        extra_fds = dict(fd_targets(pid) - self.idle_targets)
        extra_sockets = socket_peers(pid, socket_inodes(pid) - self.idle_sockets)
        # then the long-running ones too: what is left afterwards must be nothing
        http = httpx.Client(transport=httpx.HTTPTransport(uds=str(d.socket)), base_url="http://d", timeout=120)
        for name in keep:
            http.delete(f"/containers/{name}?force=1")
        time.sleep(1)
        containers = http.get("/containers/json?all=1").json()
        http.close()
        data_root = str(self.root / "daemon" / "data")
        mounts = [
            line.split()[1]
            for line in Path("/proc/mounts").read_text().splitlines()
            if line.split()[1].startswith(data_root)
        ]
        veths = subprocess.run(
            ["ip", "-o", "link", "show", "master", bridge_name(self.root / "daemon")], capture_output=True, text=True
        ).stdout.split("\n")
        ours = {netns_name(cid) for cid in self.container_ids}
        netns = (set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()) & ours
        shims = []
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit() and int(proc.name) != pid:
                try:
                    if data_root.encode() in (proc / "cmdline").read_bytes():
                        shims.append(int(proc.name))
                except OSError:
                    pass
        return {
            "idle_rss_mb": round(idle_rss / 2**20, 1),
            "end_rss_mb": round(end_rss / 2**20, 1),
            "rss_growth_mb": round((end_rss - idle_rss) / 2**20, 1),
            "idle_fds": idle_fds,
            "end_fds": end_fds,
            "fds_settled_in_s": settled_in,
            "final_fds": open_fds(pid),
            "extra_fds": extra_fds,
            "extra_sockets": extra_sockets,
            "containers_made": len(self.container_ids),
            "leftovers": {
                "containers": len(containers),
                "mounts": mounts,
                "veths": [v for v in veths if v.strip()],
                "netns": sorted(netns),
                "shims": shims,
            },
        }

    def close(self) -> int:
        """Undo everything this run made, in the order that leaves nothing behind: clients stop, the
        daemon removes its containers (they outlive a daemon), the daemon stops, then what still lives
        is killed, unmounted and removed; the root goes last, and only when nothing lives on it.
        Returns 0, or 2 when something could not be removed (it is named on stderr)."""
        self.stopping.set()
        self.deadline = 0.0
        if self.pinger_process is not None and self.pinger_process.poll() is None:
            self.pinger_process.kill()
        until = time.monotonic() + 20
        for worker in self.workers:  # an operation in flight ends (its streams are cut at random anyway)
            if worker.is_alive():
                worker.join(timeout=max(0.0, until - time.monotonic()))
        if self.args.daemon_log and (self.root / "daemon" / "daemon.stderr").exists():
            shutil.copy(self.root / "daemon" / "daemon.stderr", self.args.daemon_log)
        daemon = getattr(self, "daemon", None)
        try:
            if daemon is not None and daemon.process.poll() is None:
                remove_containers(daemon.socket)
        finally:
            if daemon is not None:
                daemon.stop()
            if self.registry is not None:
                self.registry.stop()
            if self.reference is not None:
                self.reference.kill()
                self.reference.wait()
        return clean_root(self.root, self.container_ids)


def remove_containers(socket_path: Path, rounds: int = 5) -> None:
    """Force-remove every container through the daemon until none is left (a create dropped by a
    client may still land after a first pass)."""
    transport = httpx.HTTPTransport(uds=str(socket_path))
    try:
        with httpx.Client(transport=transport, base_url="http://d", timeout=60) as http:
            for _ in range(rounds):
                listed = http.get("/containers/json?all=1").json()
                if not listed:
                    return
                for c in listed:
                    http.delete(f"/containers/{c['Id']}?force=1")
    except httpx.HTTPError as exc:
        print(f"soak: removing the containers through the daemon failed: {exc!r}", file=sys.stderr)


def answers(socket_path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.connect(str(socket_path))
            return True
        except OSError:
            return False


def clean_root(root: Path, container_ids: set[str] = frozenset()) -> int:
    """After the daemon is gone: kill this run's processes (conmon and the registry by the root in
    their command line, containers by their cgroup), unmount what is mounted under ``root``, remove
    the containers' network namespaces and cgroups and the run's bridge, then delete ``root`` if
    nothing lives on it any more.  Returns 0, or 2 with what is left named on stderr."""
    data_root = root / "daemon" / "data"
    ids = set(container_ids)
    if (data_root / "containers").is_dir():
        ids |= {p.name for p in (data_root / "containers").iterdir() if len(p.name) == 64}
    deadline = time.monotonic() + 15
    while True:
        alive = processes_of(root, ids)
        if not alive or time.monotonic() > deadline:
            break
        kill_tree(str(root).encode())
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.2)
    for mountpoint in mounts_under(root):  # deepest first
        if subprocess.run(["umount", mountpoint], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", mountpoint], capture_output=True)
    for cid in ids:
        subprocess.run(["ip", "netns", "delete", netns_name(cid)], capture_output=True)
        for hierarchy in [Path("/sys/fs/cgroup"), *Path("/sys/fs/cgroup").glob("*")]:
            group = hierarchy / cgroup_dir(cid)
            if group.is_dir():
                for sub in sorted(group.rglob("*"), reverse=True):
                    if sub.is_dir():
                        try:
                            sub.rmdir()
                        except OSError:
                            pass
                try:
                    group.rmdir()
                except OSError:
                    pass
    if (root / "daemon").exists():
        remove_bridge(root / "daemon")
    left_processes, left_mounts = processes_of(root, ids), mounts_under(root)
    if left_processes or left_mounts:
        print(f"soak: {root} is kept: processes {left_processes} and mounts {left_mounts} remain", file=sys.stderr)
        return 2
    shutil.rmtree(root, ignore_errors=True)
    return 0


def processes_of(root: Path, container_ids: set[str]) -> list[int]:
    """Processes of this run: the root in their command line, or in one of its containers' cgroups."""
    mark, groups = str(root).encode(), [cgroup_dir(cid) for cid in container_ids]
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if mark in (proc / "cmdline").read_bytes() or (
                groups and any(g in (proc / "cgroup").read_text() for g in groups)
            ):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def mounts_under(root: Path) -> list[str]:
    """Mount points at or under ``root`` in this mount namespace, deepest first."""
    prefix = str(root)
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(set(points), key=len, reverse=True)


def kill_tree(mark: bytes) -> None:
    """SIGKILL every process whose command line holds ``mark``, and its descendants."""
    parents: dict[int, list[int]] = collections.defaultdict(list)
    marked = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if mark in (proc / "cmdline").read_bytes():
                marked.append(int(proc.name))
        except OSError:
            continue
        parents[parent].append(int(proc.name))
    while marked:
        pid = marked.pop()
        marked += parents.pop(pid, [])
        try:
            os.kill(pid, 9)
        except OSError:
            pass


def fd_targets(pid: int) -> collections.Counter[str]:
    """What the daemon's open files are (sockets and pipes by kind, files by path)."""
    kinds: collections.Counter[str] = collections.Counter()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        kinds[target.split(":[")[0] if ":[" in target else target] += 1
    return kinds


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def socket_peers(pid: int, inodes: set[str]) -> list[str]:
    """For the daemon's sockets ``inodes``: each one's local address and who holds its peer."""
    lines = subprocess.run(["ss", "-axpn"], capture_output=True, text=True).stdout.splitlines()[1:]
    by_inode = {}
    for line in lines:
        fields = line.split()
        if len(fields) >= 8:
            by_inode[fields[5]] = (fields[4], fields[7], " ".join(fields[8:]))
    others = {}  # TCP, UDP, netlink: ss -e prints their inode as ino:N
    for line in subprocess.run(
        ["ss", "-aepn", "-A", "inet,netlink"], capture_output=True, text=True
    ).stdout.splitlines():
        for word in line.split():
            if word.startswith("ino:"):
                others[word[4:]] = " ".join(line.split()[:6])
    out = []
    for inode in sorted(inodes):
        if inode in by_inode:
            local, peer, _ = by_inode[inode]
            out.append(f"unix {local} -> {by_inode.get(peer, ('', '', '?'))[2][:120]}")
        else:
            out.append(others.get(inode) or _proc_net_kind(pid, inode))
    return out


def _proc_net_kind(pid: int, inode: str) -> str:
    for kind in ("unix", "tcp", "tcp6", "udp", "udp6", "netlink", "raw", "packet"):
        try:
            for line in Path(f"/proc/{pid}/net/{kind}").read_text().splitlines()[1:]:
                if inode in line.split():
                    return f"{kind}: {' '.join(line.split())[:140]}"
        except OSError:
            continue
    return f"socket {inode} (not in /proc/net: another namespace's)"


def verdict(report: dict) -> list[str]:
    failures = []
    if not report["alive"]:
        failures.append("the daemon died")
    fives = {code: n for code, n in report["codes"].items() if code.isdigit() and int(code) >= 500}
    if fives:
        failures.append(f"5xx answers: {fives}")
    if report.get("ping_ms", {}).get("p99", 1e9) >= 100:
        failures.append(f"/_ping p99 {report.get('ping_ms', {}).get('p99', 'n/a')} ms >= 100 ms")
    if report.get("rss_growth_mb", 1e9) >= 20:
        failures.append(f"RSS grew by {report.get('rss_growth_mb')} MB")
    left = report.get("leftovers", {})
    if any(left.get(k) for k in ("containers", "mounts", "veths", "netns", "shims")):
        failures.append(f"leftovers: {left}")
    if report.get("end_fds", 1e9) > report.get("idle_fds", -1):
        failures.append(f"open files {report.get('end_fds')} > idle {report.get('idle_fds')}")
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between memory samples")
    parser.add_argument("--storage-driver", default=os.environ.get("DOCKYARD_TEST_STORAGE_DRIVER", "vfs"))
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument("--daemon-log", type=Path, help="keep the daemon's log here")
    parser.add_argument("--debug", action="store_true", help="run the daemon with --debug (loop-stall log)")
    parser.add_argument(
        "--clean",
        type=Path,
        metavar="ROOT",
        help="only clean up the root (dockyard-soak-*) of a run that was killed with SIGKILL",
    )
    args = parser.parse_args()
    assert DOCKER, "the docker CLI is needed (it sets up the long-running containers)"
    if args.clean is not None:
        root = args.clean.resolve()
        assert root.name.startswith("dockyard-soak-"), f"{root} is not a soak run's root"
        if answers(root / "daemon" / "dockyard.sock"):  # the daemon may have outlived its harness
            remove_containers(root / "daemon" / "dockyard.sock", rounds=2)
        sys.exit(clean_root(root))
    soak = Soak(args)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    report = None
    try:
        report = soak.run()
    except Interrupted as exc:
        print(f"soak: {exc} received: stopping the run and cleaning up", file=sys.stderr)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, _hold_on)
        kept = soak.close()
    if report is None:
        sys.exit(130 if kept == 0 else 2)
    failures = verdict(report)
    if kept:
        failures.append(f"{soak.root} could not be cleaned up")
    report["verdict"] = failures or "every target met"
    text = json.dumps(report, indent=1)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
