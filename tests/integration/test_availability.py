"""The daemon as users run it never dies or freezes because of a client (issue #10).

The ``daemon`` fixture starts the daemon with the console script, as contrib/ and the README do.
The issue's two reproductions are regression tests here, next to the rules that fix the defect
class: other requests keep answering while one client streams a multi-GB log, saves an image or
pulls one; every stream stops its work within a second of its client leaving; logs are rotated and
read back across rotated files; JSON bodies are capped.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers.daemon import DOCKER, DOCKYARD
from tests.helpers.probes import bytes_read, ignores_sigpipe, open_fds, open_stream, ping, rss_bytes, settles
from tests.helpers.waiting import holds_for, wait_for

pytestmark = [
    pytest.mark.requires_root,
    pytest.mark.requires_lxc,
    pytest.mark.integration,
    pytest.mark.requires_docker_cli,
]

#: the size of the fabricated container log (the issue's was 7.6 GB)
HUGE = 2 << 30
#: what a client may wait for /_ping while another client streams
PING_LIMIT = 0.25


def inspect(daemon, name: str) -> dict:
    result = daemon.docker("inspect", name)
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout)[0]


def leave_after(daemon, seconds: float, *args: str) -> None:
    """Run a docker command and kill it after ``seconds`` (a user's ctrl-c)."""
    with pytest.raises(subprocess.TimeoutExpired):
        daemon.docker(*args, timeout=seconds)


def answers_promptly(daemon) -> None:
    result = daemon.docker("ps", timeout=3)  # raises TimeoutExpired if the daemon is frozen
    assert result.returncode == 0, result.stderr.decode()


class Reader(threading.Thread):
    """Reads a stream as fast as it comes until told to stop."""

    def __init__(self, sock: socket.socket, chunk: int = 1 << 20) -> None:
        super().__init__(daemon=True)
        self.sock, self.chunk, self.total, self.stopping = sock, chunk, 0, threading.Event()
        self.ended = False
        self.start()

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                data = self.sock.recv(self.chunk)
                if not data:  # the daemon ended the stream (not our own shutdown in leave())
                    self.ended = not self.stopping.is_set()
                    return
                self.total += len(data)
        except OSError:
            pass

    def leave(self) -> None:
        self.stopping.set()
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.join(10)


def pings_while(daemon, reader: Reader, count: int = 30) -> list[float]:
    latencies = []
    for _ in range(count):
        latencies.append(ping(daemon.socket))
        time.sleep(0.03)
    return latencies


@pytest.fixture(scope="module")
def huge_log(daemon):
    """A running container with a multi-GB json log (records written straight into its log file:
    what is under test is reading it, not how it was written)."""
    run = daemon.docker("run", "-d", "--name", "huge", "busybox", "sleep", "3600")
    assert run.returncode == 0, run.stderr.decode()
    log = Path(inspect(daemon, "huge")["LogPath"])
    record = b"2023-11-14T22:13:20.000000000+00:00 stdout F " + b"spam " * 24 + b"\n"  # as conmon writes it
    block = record * ((4 << 20) // len(record))
    with open(log, "ab") as f:
        for _ in range(HUGE // len(block)):
            f.write(block)
        f.write(b"2023-11-14T22:13:21.000000000+00:00 stdout F the end\n")
    yield log
    daemon.docker("rm", "-f", "huge")


# -- the console script ------------------------------------------------------------------------------


def test_the_daemon_under_test_is_the_console_script(daemon):
    cmdline = Path(f"/proc/{daemon.process.pid}/cmdline").read_bytes().split(b"\0")
    assert str(DOCKYARD).encode() in cmdline and b"daemon" in cmdline, cmdline
    assert ignores_sigpipe(daemon.process.pid)


# -- the issue's reproductions ----------------------------------------------------------------------


def test_issue_10_clients_leaving_mid_stream_do_not_kill_the_daemon(daemon):
    """import, run, logs with clients cut off: the daemon used to die of SIGPIPE, silently."""
    run = daemon.docker(
        "run", "-d", "--name", "chatty", "busybox", "sh", "-c", "yes spamspamspamspam | head -c 30000000; sleep 600"
    )
    assert run.returncode == 0, run.stderr.decode()
    log = Path(inspect(daemon, "chatty")["LogPath"])
    assert wait_for(lambda: log.exists() and log.stat().st_size > 10_000_000, timeout=30)
    for _ in range(4):
        leave_after(daemon, 0.5, "logs", "-f", "chatty")
    for _ in range(3):
        try:
            daemon.docker("run", "--rm", "busybox", "sh", "-c", "yes | head -c 1000000", timeout=0.3)
        except subprocess.TimeoutExpired:
            pass
    assert daemon.process.poll() is None, daemon.log.read_text()[-2000:]
    answers_promptly(daemon)
    daemon.docker("rm", "-f", "chatty")


def test_issue_10_following_a_huge_log_and_leaving(daemon, huge_log):
    """``docker logs -f`` on a multi-GB log, interrupted after half a second, three times: the
    daemon used to read the whole file into memory on the event loop and never notice."""
    pid = daemon.process.pid
    rss = rss_bytes(pid)
    for _ in range(3):
        leave_after(daemon, 0.5, "logs", "-f", "huge")
        assert settles(pid, within=1.0), "the daemon kept working for a client that left"
    answers_promptly(daemon)
    assert rss_bytes(pid) - rss < 100 << 20


# -- the event loop keeps answering -----------------------------------------------------------------


def test_ping_stays_fast_while_a_huge_log_streams(daemon, huge_log):
    pid = daemon.process.pid
    cid = inspect(daemon, "huge")["Id"]
    reader = Reader(open_stream(daemon.socket, "GET", f"/containers/{cid}/logs?stdout=1&stderr=1"))
    try:
        latencies = pings_while(daemon, reader)
        streamed = reader.total
    finally:
        reader.leave()
    assert streamed > 8 << 20 and not reader.ended  # the log was streaming all along
    assert max(latencies) < PING_LIMIT, latencies
    assert settles(pid, within=1.0)


def test_tail_reads_only_the_end_of_a_huge_log(daemon, huge_log):
    pid = daemon.process.pid
    before = bytes_read(pid)
    result = daemon.docker("logs", "--tail", "3", "huge", timeout=10)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().splitlines()[-1] == "the end"
    assert len(result.stdout.splitlines()) == 3
    assert bytes_read(pid) - before < 16 << 20


def test_ping_stays_fast_while_an_image_is_saved(daemon, tmp_path):
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(256 << 20)  # sparse: cheap to make, 256 MiB to store and to save
    importer = subprocess.Popen(
        [DOCKER, "import", "-", "bigimage"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, env=daemon.env()
    )
    assert importer.stdin is not None
    with tarfile.open(fileobj=importer.stdin, mode="w|") as tar:
        tar.add(big, arcname="big.bin")
    importer.stdin.close()
    assert importer.wait(120) == 0
    try:
        pid = daemon.process.pid
        reader = Reader(open_stream(daemon.socket, "GET", "/images/get?names=bigimage"), chunk=256 << 10)
        try:
            latencies = pings_while(daemon, reader, count=20)
            streamed = reader.total
        finally:
            reader.leave()
        assert streamed > 16 << 20
        assert max(latencies) < PING_LIMIT, latencies
        assert settles(pid, within=1.0)
    finally:
        daemon.docker("rmi", "bigimage")


# -- every stream stops when its client leaves ------------------------------------------------------


def test_streams_free_everything_within_a_second_of_their_client_leaving(daemon):
    run = daemon.docker("run", "-d", "--name", "quiet", "busybox", "sleep", "600")
    assert run.returncode == 0, run.stderr.decode()
    cid = inspect(daemon, "quiet")["Id"]
    pid = daemon.process.pid
    try:
        # the start settles first (its threads and files): the baseline is a count that holds
        def steady_fds() -> int:
            n = open_fds(pid)
            return n if holds_for(lambda: open_fds(pid) == n, 0.3) else 0

        baseline = wait_for(steady_fds)
        assert baseline, "the daemon's open files did not settle after the start"
        exec_id = json.loads(
            daemon_api(daemon, "POST", f"/containers/{cid}/exec", {"Cmd": ["sleep", "601"], "AttachStdout": True})
        )["Id"]
        upgrade = "Upgrade: tcp\r\nConnection: Upgrade\r\n"
        clients = [
            open_stream(daemon.socket, "GET", f"/containers/{cid}/logs?stdout=1&follow=1", read=0),
            open_stream(daemon.socket, "GET", "/events", read=0),
            open_stream(daemon.socket, "GET", f"/containers/{cid}/stats", read=100),
            open_stream(
                daemon.socket, "POST", f"/containers/{cid}/attach?stream=1&stdout=1&stderr=1", headers=upgrade, read=10
            ),
            open_stream(
                daemon.socket,
                "POST",
                f"/exec/{exec_id}/start",
                body=b'{"Detach":false,"Tty":false}',
                headers=upgrade,
                read=10,
            ),
            open_stream(daemon.socket, "POST", f"/containers/{cid}/wait", read=10),
            open_stream(daemon.socket, "GET", f"/containers/{cid}/export", read=4096),
            open_stream(daemon.socket, "GET", f"/containers/{cid}/archive?path=/bin", read=4096),
            open_stream(daemon.socket, "GET", "/images/get?names=busybox", read=4096),
        ]
        # each holds its connection and more
        assert wait_for(
            lambda: open_fds(pid) > baseline + len(clients) and daemon_info(daemon)["NEventsListener"] == 1, timeout=10
        )
        for client in clients:
            client.close()
        left = time.monotonic()
        # what stays is the exec process's own: it runs on without its client, as in Docker (one
        # connection to its shim, waiting for its exit code)
        assert wait_for(lambda: open_fds(pid) <= baseline + 1, timeout=3.0), (open_fds(pid), baseline)
        freed = time.monotonic() - left
        assert daemon_info(daemon)["NEventsListener"] == 0
        assert freed < 1.0, f"the streams' resources were freed {freed:.2f} s after their clients left"
        assert settles(pid, within=1.0)
        for proc in Path("/proc").iterdir():  # end the exec's process (seen from the host)
            try:
                if proc.name.isdigit() and (proc / "cmdline").read_bytes() == b"sleep\x00601\x00":
                    os.kill(int(proc.name), 9)
            except OSError:
                pass
        assert wait_for(lambda: open_fds(pid) <= baseline, timeout=5.0), (open_fds(pid), baseline)
    finally:
        daemon.docker("rm", "-f", "quiet")


def test_a_client_reading_an_export_slowly_freezes_nothing(daemon):
    """export and cp read a running container frozen (and under its lock): into a spool file, at the
    disk's pace; the client then reads it at its own.  One that never reads holds up no stop or rm."""
    run = daemon.docker("run", "-d", "--name", "exported", "busybox", "sleep", "600")
    assert run.returncode == 0, run.stderr.decode()
    cid = inspect(daemon, "exported")["Id"]
    stalled = [
        open_stream(daemon.socket, "GET", f"/containers/{cid}/export", read=1),
        open_stream(daemon.socket, "GET", f"/containers/{cid}/archive?path=/bin", read=1),
    ]
    try:
        assert daemon.docker("exec", "exported", "true", timeout=10).returncode == 0  # not frozen
        assert daemon.docker("rm", "-f", "exported", timeout=15).returncode == 0
    finally:
        for s in stalled:
            s.close()


def daemon_api(daemon, method: str, path: str, body: dict | None = None) -> bytes:
    transport = httpx.HTTPTransport(uds=str(daemon.socket))
    with httpx.Client(transport=transport, base_url="http://d", timeout=30) as client:
        response = client.request(method, path, json=body)
    assert response.status_code < 300, response.text
    return response.content


def daemon_info(daemon) -> dict:
    return json.loads(daemon_api(daemon, "GET", "/info"))


def test_a_build_is_cancelled_when_its_client_leaves(daemon):
    before = {c["Id"] for c in json.loads(daemon_api(daemon, "GET", "/containers/json?all=1"))}
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        dockerfile = b"FROM busybox\nRUN echo go$((40 + 2)); sleep 600\n"  # prints go42 once it runs
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    body = context.getvalue()
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(str(daemon.socket))
    s.sendall(
        b"POST /build?rm=1 HTTP/1.1\r\nHost: d\r\nContent-Type: application/x-tar\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body
    )
    seen = b""
    while b"go42" not in seen:
        chunk = s.recv(65536)
        assert chunk, seen
        seen += chunk
    building = {c["Id"] for c in json.loads(daemon_api(daemon, "GET", "/containers/json?all=1"))} - before
    assert len(building) == 1
    s.close()
    left = time.monotonic()
    assert wait_for(
        lambda: not building & {c["Id"] for c in json.loads(daemon_api(daemon, "GET", "/containers/json?all=1"))},
        timeout=10,
    )
    assert time.monotonic() - left < 2.0  # noticed within 0.25 s, then SIGKILL, wait and rm
    assert settles(daemon.process.pid, within=1.0)


# -- pulls --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    from tests.helpers.registry import start_registry

    server = start_registry(tmp_path_factory.mktemp("registry"))
    yield server
    server.stop()


def push_random_image(registry, name: str, size: int) -> None:
    """An image of one layer of ``size`` random bytes, straight into the registry."""
    from tests.helpers.images import random_layer
    from tests.helpers.registry import push_image

    with httpx.Client(base_url=registry.url, timeout=120) as http:
        push_image(http, name, "latest", [random_layer(size, "random.bin")], compresslevel=1)


def test_ping_stays_fast_while_pulling_and_a_pull_stops_when_its_client_leaves(daemon, registry):
    push_random_image(registry, "big", 160 << 20)
    pid = daemon.process.pid
    reference = f"{registry.host}/big"
    reader = Reader(
        open_stream(
            daemon.socket, "POST", f"/images/create?fromImage={reference}&tag=latest", headers="Connection: close\r\n"
        )
    )
    try:
        latencies = pings_while(daemon, reader, count=20)
        assert wait_for(lambda: reader.ended, timeout=120)
    finally:
        reader.leave()
    assert max(latencies) < PING_LIMIT, latencies
    assert daemon.docker("image", "inspect", f"{reference}:latest").returncode == 0
    assert daemon.docker("rmi", f"{reference}:latest").returncode == 0

    # again, leaving at the first download progress: the pull stops and leaves nothing behind
    s = open_stream(daemon.socket, "POST", f"/images/create?fromImage={reference}&tag=latest", read=0)
    seen = b""
    while b"Downloading" not in seen:
        chunk = s.recv(65536)
        assert chunk, seen
        seen += chunk
    s.close()
    assert settles(pid, within=1.0), "the pull went on after its client left"
    assert daemon.docker("image", "inspect", f"{reference}:latest").returncode != 0
    assert not [p.name for p in (daemon.root / "data" / "tmp").iterdir() if p.name.startswith("pull-")]


# -- log rotation and log drivers ---------------------------------------------------------------------


def numbered(lines: list[str]) -> list[int]:
    return [int(line.split()[1]) for line in lines]


#: a container writing one numbered line every 10 ms, for about three seconds
SLOW_WRITER = "i=0; while [ $i -lt 300 ]; do echo line $i; i=$((i+1)); usleep 10000; done"


def test_rotated_logs_keep_max_file_files_and_read_back_in_order(daemon):
    run = daemon.docker(
        "run",
        "--name",
        "rotating",
        "--log-opt",
        "max-size=2k",
        "--log-opt",
        "max-file=3",
        "busybox",
        "sh",
        "-c",
        SLOW_WRITER,
    )
    assert run.returncode == 0, run.stderr.decode()
    try:
        info = inspect(daemon, "rotating")
        assert info["HostConfig"]["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "2k", "max-file": "3"}}
        log = Path(info["LogPath"])
        files = sorted(p.name for p in log.parent.iterdir() if p.name.startswith(log.name))
        assert files == [log.name, f"{log.name}.1", f"{log.name}.2"]
        # rotated when found past 2 kB, at most half a second of this container's output later
        assert all((log.parent / f).stat().st_size < 2000 + 5000 for f in files)
        kept = numbered(daemon.docker("logs", "rotating").stdout.decode().splitlines())
        assert kept == list(range(300 - len(kept), 300)) and 60 < len(kept) < 300
        tail = numbered(daemon.docker("logs", "--tail", "50", "rotating").stdout.decode().splitlines())
        assert tail == list(range(250, 300))
    finally:
        daemon.docker("rm", "-f", "rotating")


def test_following_a_log_through_its_rotations_loses_nothing(daemon):
    run = daemon.docker(
        "run",
        "-d",
        "--name",
        "rotating-f",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=100",
        "busybox",
        "sh",
        "-c",
        "sleep 1; " + SLOW_WRITER,
    )
    assert run.returncode == 0, run.stderr.decode()
    try:
        follow = daemon.docker("logs", "-f", "rotating-f", timeout=60)
        assert follow.returncode == 0, follow.stderr.decode()
        assert numbered(follow.stdout.decode().splitlines()) == list(range(300))
        log = Path(inspect(daemon, "rotating-f")["LogPath"])
        assert Path(f"{log}.3").exists()
    finally:
        daemon.docker("rm", "-f", "rotating-f")


def test_log_driver_none(daemon):
    run = daemon.docker("run", "--name", "silent", "--log-driver", "none", "busybox", "echo", "attached output")
    assert run.returncode == 0, run.stderr.decode()
    try:
        assert run.stdout.decode() == "attached output\n"  # attach does not need a log
        info = inspect(daemon, "silent")
        assert info["HostConfig"]["LogConfig"]["Type"] == "none" and info["LogPath"] == ""
        assert not list((daemon.root / "data" / "containers" / info["Id"]).glob("*json.log*"))
        logs = daemon.docker("logs", "silent")
        assert logs.returncode != 0
        assert "configured logging driver does not support reading" in logs.stderr.decode()
    finally:
        daemon.docker("rm", "-f", "silent")


@pytest.mark.parametrize(
    "options, message",
    [
        (("--log-driver", "syslog"), "logger: no log driver named 'syslog' is registered"),
        (("--log-opt", "max-sise=1m"), "unknown log opt 'max-sise' for json-file log driver"),
        (("--log-opt", "max-file=0"), "max-file cannot be less than 1"),
    ],
)
def test_bad_log_configurations_are_refused_at_create(daemon, options, message):
    result = daemon.docker("create", *options, "busybox", "true")
    assert result.returncode != 0
    assert message in result.stderr.decode()
    transport = httpx.HTTPTransport(uds=str(daemon.socket))
    with httpx.Client(transport=transport, base_url="http://d") as client:
        response = client.post(
            "/containers/create",
            json={"Image": "busybox", "Cmd": ["true"], "HostConfig": {"LogConfig": {"Type": "syslog", "Config": {}}}},
        )
    assert response.status_code == 400 and "syslog" in response.json()["message"]


def test_a_json_body_over_a_mebibyte_is_refused_with_413(daemon):
    body = json.dumps({"Image": "busybox", "Cmd": ["true"], "Labels": {"big": "x" * (2 << 20)}}).encode()
    s = open_stream(daemon.socket, "POST", "/containers/create", body=body, headers="Connection: close\r\n", read=0)
    answer = b""
    while chunk := s.recv(65536):
        answer += chunk
    s.close()
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"request body too large" in answer
    assert daemon.process.poll() is None
