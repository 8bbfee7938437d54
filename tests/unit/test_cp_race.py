"""Issue 13, hole 5 (the CVE-2018-15664 class): ``docker cp`` races a process swapping a directory
for a symlink to the host.

The attacker here is a process exchanging ``vol/dir`` (a directory) and
``vol/swap`` (a symlink to a host directory) with ``renameat2(RENAME_EXCHANGE)``
as fast as it can, exactly what a process in a container sharing the volume can
do.  Extraction and archiving by path strings get redirected to the host (shown
first, so the attack is known to work here); the daemon's chrooted cp does not.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest

from dockyard import archive, container_files

pytestmark = pytest.mark.requires_root


@pytest.fixture
def race(tmp_path: Path):
    vol, victim = tmp_path / "vol", tmp_path / "victim"
    vol.mkdir()
    victim.mkdir()
    (victim / "secret").write_text("host secret\n")
    (vol / "dir").mkdir()
    (vol / "dir" / "secret").write_text("inside\n")
    (vol / "swap").symlink_to(victim)
    # a process of its own, as the attacker in a container is: a thread would take turns with the test
    # under the GIL, and how often it swapped would depend on what else the interpreter runs
    swapper = subprocess.Popen(
        [sys.executable, "-c", SWAPPER, str(vol / "dir"), str(vol / "swap")], stdout=subprocess.PIPE
    )
    try:
        assert swapper.stdout.readline() == b"swapping\n"
        yield vol, victim
    finally:
        swapper.kill()
        swapper.wait()


SWAPPER = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
a, b = sys.argv[1].encode(), sys.argv[2].encode()
libc.renameat2(-100, a, -100, b, 2)
print("swapping", flush=True)
while True:
    libc.renameat2(-100, a, -100, b, 2)  # AT_FDCWD, RENAME_EXCHANGE
"""


def payload() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for i in range(300):
            info = tarfile.TarInfo(f"planted{i}")
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    return buf.getvalue()


def attempts(n: int, attempt) -> None:
    for _ in range(n):
        try:
            attempt()
        except Exception:  # noqa: BLE001 - a cp that fails under the race is fine; only where it wrote matters
            pass


def test_cp_into_a_swapped_directory_never_writes_to_the_host(race):
    vol, victim = race
    data = payload()
    # the attack works against extraction by path (what cp did before)
    attempts(20, lambda: archive.apply_layer(vol / "dir", io.BytesIO(data)))
    assert len(list(victim.iterdir())) > 1, "the race did not reach the host: the attack is not exercised"
    for entry in victim.iterdir():
        if entry.name != "secret":
            entry.unlink()

    def daemon_cp() -> None:
        read_fd, write_fd = os.pipe()
        feeder = threading.Thread(target=_feed, args=(write_fd, data), daemon=True)
        feeder.start()
        with os.fdopen(read_fd, "rb") as source:
            container_files.extract(vol, "/dir", "/dir", source)
        feeder.join(10)

    attempts(20, daemon_cp)
    assert sorted(p.name for p in victim.iterdir()) == ["secret"]


def _feed(fd: int, data: bytes) -> None:
    try:
        with os.fdopen(fd, "wb") as sink:
            sink.write(data)
    except BrokenPipeError:
        pass


def test_cp_out_of_a_swapped_directory_never_reads_the_host(race, tmp_path):
    vol, _ = race
    out = tmp_path / "out.tar"

    def by_path() -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(vol / "dir", arcname="dir")
        return buf.getvalue()

    leaked = False
    for _ in range(5000):  # the attack works against archiving by path (what cp did before); ~1% of tries leak
        try:
            leaked = b"host secret" in by_path()
        except OSError:
            continue
        if leaked:
            break
    assert leaked, "the race did not reach the host: the attack is not exercised"

    def daemon_cp() -> bytes:
        with open(out, "wb") as sink:
            container_files.write_tar(vol, "/dir", "/dir", sink)
        return out.read_bytes()

    seen = []
    for _ in range(30):
        try:
            seen.append(daemon_cp())
        except Exception:  # noqa: BLE001 - see above
            pass
    assert seen, "no cp succeeded under the race"
    assert not any(b"host secret" in data for data in seen)
    assert any(b"inside" in data for data in seen)


def test_file_operations_freeze_a_running_container_and_thaw_it_after():
    """cp, commit and export run inside ContainerService.frozen: pause, work, unpause (not for a paused
    container, not with commit --pause=false)."""
    import asyncio
    from types import SimpleNamespace

    from dockyard.containers import ContainerService
    from dockyard.models.container import ContainerState

    calls: list[str] = []
    service = ContainerService.__new__(ContainerService)
    service.exec = SimpleNamespace(
        pause=lambda cid: calls.append(f"pause {cid}"), unpause=lambda cid: calls.append(f"unpause {cid}")
    )

    async def run(state: ContainerState, pause: bool = True) -> None:
        c = SimpleNamespace(id="c1", lock=asyncio.Lock(), state=state)
        async with service.frozen(c, pause):
            calls.append("work")

    asyncio.run(run(ContainerState(status="running", running=True)))
    assert calls == ["pause c1", "work", "unpause c1"]
    calls.clear()
    asyncio.run(run(ContainerState(status="running", running=True), pause=False))
    asyncio.run(run(ContainerState(status="paused", running=True, paused=True)))
    asyncio.run(run(ContainerState(status="exited")))
    assert calls == ["work", "work", "work"]
