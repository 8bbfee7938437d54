"""Reading container logs (dockyard.logs): tail from the end, across rotated files
(dockyard.log_rotation), bounded reads, follow through rotations; the two line formats; and the
log configuration rules."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from contextlib import aclosing
from pathlib import Path

import pytest

from dockyard import log_rotation, logs
from dockyard.errors import InvalidParameter
from dockyard.logs import LogCursor, LogEntry, LogQuery, stream_log
from dockyard.models.container import LogConfig
from tests.helpers.waiting import wait_for

NS = 1_700_000_000_000_000_000


def text(entry: LogEntry) -> bytes:
    return entry.data


def cri_line(stream: str, ns: int, data: bytes, full: bool = True) -> bytes:
    """A line as conmon writes it (its offset is the host's; +02:00 here, to exercise the conversion)."""
    t = time.gmtime(ns // 10**9 + 7200)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", t) + ".%09d+02:00" % (ns % 10**9)
    return b"%s %s %s %s\n" % (stamp.encode(), stream.encode(), b"F" if full else b"P", data)


class Writer:
    """The log writer's side, as conmon does it: lines appended to LOG; a rotation renames the files
    (dockyard.log_rotation.rotate) and the writer opens a new LOG when asked (exec_reopen_log)."""

    def __init__(self, path: Path, max_size: int = 0, max_files: int = 1) -> None:
        self.path, self.max_size, self.max_files = path, max_size, max_files
        self.f = open(path, "ab")

    def write(self, stream: str, text: bytes, ns: int = NS) -> None:
        self.f.write(cri_line(stream, ns, text))
        self.f.flush()
        if self.max_size and self.f.tell() >= self.max_size:
            log_rotation.rotate(self.path, self.max_files)
            self.f.close()
            self.f = open(self.path, "ab")  # the reopen

    def close(self) -> None:
        self.f.close()


def write_lines(
    path: Path, lines: range | list[int], *, max_size: int = 0, max_files: int = 1, stream: str = "stdout", t0: int = NS
) -> None:
    w = Writer(path, max_size, max_files)
    for i in lines:
        w.write(stream, f"line {i}".encode(), t0 + i * 1_000_000_000)
    w.close()


def read_all(path: Path, query: LogQuery | None = None, **kw) -> list[str]:
    async def go() -> list[str]:
        async with aclosing(stream_log(path, query or LogQuery(), text, **kw)) as chunks:
            return [line for chunk in [c async for c in chunks] for line in chunk.decode().splitlines()]

    return asyncio.run(go())


def numbers(lines: list[str]) -> list[int]:
    return [int(line.split()[1]) for line in lines]


# -- reading ----------------------------------------------------------------------------------------


def test_everything_in_order_across_rotated_files(tmp_path):
    log = tmp_path / "c-json.log"
    write_lines(log, range(1000), max_size=4000, max_files=100)
    assert (tmp_path / "c-json.log.3").exists()
    assert numbers(read_all(log)) == list(range(1000))


@pytest.mark.parametrize("tail", [0, 1, 7, 60, 999, 1000, 5000])
def test_tail_counts_back_across_rotated_files(tmp_path, tail):
    log = tmp_path / "c-json.log"
    write_lines(log, range(1000), max_size=4000, max_files=100)
    assert numbers(read_all(log, LogQuery(tail=tail))) == list(range(1000))[len(range(1000)) - min(tail, 1000) :]


def test_tail_reads_from_the_end_only(tmp_path):
    """A 60 MB log: the last lines are found by reading a few blocks, not the file."""
    log = tmp_path / "c-json.log"
    record = cri_line("stdout", NS, b"x" * 100)
    with open(log, "wb") as f:
        block = record * 10_000
        for _ in range(60_000_000 // len(block)):
            f.write(block)
        f.write(cri_line("stdout", NS, b"last"))
    before = _bytes_read()
    cursor = LogCursor(log, tail=3)
    out, step = cursor.step(LogQuery(), text)
    cursor.close()
    read = _bytes_read() - before
    assert out.endswith(b"last\n") and out.count(b"\n") == 3 and step == "end"
    assert read < 4 * logs.BLOCK


def _bytes_read() -> int:
    """What this process has read with read(2) and friends so far (``rchar``)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def test_a_plain_read_ends_where_the_log_ended_when_it_began(tmp_path):
    log = tmp_path / "c-json.log"
    write_lines(log, range(10))
    cursor = LogCursor(log)
    write_lines(log, range(10, 20))  # a container still writing
    out, step = cursor.step(LogQuery(), text, limit=1 << 20)
    cursor.close()
    assert numbers(out.decode().splitlines()) == list(range(10)) and step == "end"


def test_batches_are_bounded(tmp_path):
    log = tmp_path / "c-json.log"
    write_lines(log, range(20000))
    cursor = LogCursor(log)
    sizes = []
    while True:
        out, step = cursor.step(LogQuery(), text, limit=8192)
        sizes.append(len(out))
        if step != "more":
            break
    cursor.close()
    assert len(sizes) > 50 and max(sizes) < 8192


def test_a_record_cut_short_and_garbage_are_skipped(tmp_path):
    log = tmp_path / "c-json.log"
    write_lines(log, range(3))
    with open(log, "ab") as f:
        f.write(b"not json\n" + b"z" * (logs.MAX_RECORD + 10) + b"\n" + b'{"log":"half')
    assert numbers(read_all(log)) == [0, 1, 2]


def test_streams_since_and_until_filter(tmp_path):
    log = tmp_path / "c-json.log"
    write_lines(log, range(0, 10, 2), stream="stdout")
    write_lines(log, range(1, 10, 2), stream="stderr")
    assert numbers(read_all(log, LogQuery(stdout=False))) == [1, 3, 5, 7, 9]
    since = NS / 1e9 + 2.5
    assert numbers(read_all(log, LogQuery(stdout=True, stderr=False, since=since))) == [4, 6, 8]
    assert numbers(read_all(log, LogQuery(stdout=True, stderr=False, until=NS / 1e9 + 4))) == [0, 2, 4]


def test_a_missing_log_is_empty(tmp_path):
    assert read_all(tmp_path / "none-json.log") == []


def test_follow_reads_through_rotations_without_losing_or_repeating(tmp_path):
    """A writer rotating every ~30 records while a follower reads: every record arrives once, in order."""
    log = tmp_path / "c-json.log"
    done = threading.Event()

    def writer():
        w = Writer(log, max_size=2000, max_files=1000)
        for i in range(3000):
            w.write("stdout", f"line {i}".encode())
            if i % 97 == 0:
                time.sleep(0.001)
        w.close()
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        got = read_all(log, follow=True, running=lambda: not done.is_set(), poll=0.001)
    finally:
        thread.join()
    assert numbers(got) == list(range(3000))
    assert len(list(tmp_path.iterdir())) > 50


def test_follow_with_one_file_sees_each_replacement(tmp_path):
    log = tmp_path / "c-json.log"
    done = threading.Event()
    gate = threading.Semaphore(0)

    def writer():
        w = Writer(log, max_size=200, max_files=1)
        for i in range(40):
            gate.acquire()  # one record per reader step: the reader never falls a file behind
            w.write("stdout", f"line {i}".encode())
        w.close()
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()

    async def go() -> list[str]:
        got: list[str] = []
        gate.release()
        async with aclosing(
            stream_log(log, LogQuery(), text, follow=True, running=lambda: not done.is_set(), poll=0.001)
        ) as chunks:
            async for chunk in chunks:
                got += chunk.decode().splitlines()
                gate.release()
        return got

    try:
        got = asyncio.run(go())
    finally:
        for _ in range(40):
            gate.release()
        thread.join()
    assert numbers(got) == list(range(40))


def test_follow_stops_when_the_consumer_does(tmp_path):
    """Closing the stream closes the files at once, even while following a quiet log."""
    log = tmp_path / "c-json.log"
    write_lines(log, range(5))

    async def go() -> None:
        stream = stream_log(log, LogQuery(), text, follow=True, running=lambda: True, poll=0.01)
        async with aclosing(stream) as chunks:
            async for _ in chunks:
                break

    def open_files() -> int:
        return len(list(Path("/proc/self/fd").iterdir()))

    before = open_files()
    asyncio.run(go())
    assert wait_for(lambda: open_files() <= before, timeout=2)  # closed by a worker thread


# -- configuration ----------------------------------------------------------------------------------


def test_defaults_fill_what_the_container_left_out():
    default = LogConfig(type="json-file", config={"max-size": "10m", "max-file": "3"})
    assert logs.merge_config(LogConfig(), default) == default
    mine = logs.merge_config(LogConfig(config={"max-file": "5"}), default)
    assert mine.type == "json-file" and mine.config == {"max-size": "10m", "max-file": "5"}
    # another driver does not inherit the default driver's options
    assert logs.merge_config(LogConfig(type="none"), default) == LogConfig(type="none", config={})
    assert logs.merge_config(LogConfig(), LogConfig(type="none")).type == "none"


@pytest.mark.parametrize(
    "config, expected",
    [
        ({}, logs.LogSettings("json-file", 0, 1)),
        ({"max-size": "10m", "max-file": "3"}, logs.LogSettings("json-file", 10_000_000, 3)),
        ({"max-size": "1.5k"}, logs.LogSettings("json-file", 1500, 1)),
        ({"max-size": "2MB", "compress": "false", "mode": "blocking"}, logs.LogSettings("json-file", 2_000_000, 1)),
    ],
)
def test_json_file_options(config, expected):
    assert logs.settings(LogConfig(type="json-file", config=config)) == expected


@pytest.mark.parametrize(
    "driver, config, message",
    [
        ("syslog", {}, "logger: no log driver named 'syslog' is registered"),
        ("json-file", {"max-sise": "1m"}, "unknown log opt 'max-sise' for json-file log driver"),
        ("json-file", {"max-size": "lots"}, "invalid size: 'lots'"),
        ("json-file", {"max-size": "0"}, "max-size must be a positive number"),
        ("json-file", {"max-file": "0"}, "max-file cannot be less than 1"),
        ("json-file", {"max-file": "x"}, "invalid syntax"),
        ("json-file", {"labels": "a"}, "log opt 'labels' of the json-file log driver is not supported"),
        ("json-file", {"compress": "true", "max-size": "1m", "max-file": "2"}, "'compress'"),
        ("none", {"mode": "non-blocking"}, "non-blocking"),
    ],
)
def test_refused_configurations_name_the_problem(driver, config, message):
    with pytest.raises(InvalidParameter, match=message.replace("(", r"\(").replace(".", r"\.")):
        logs.settings(LogConfig(type=driver, config=config))


def test_none_reads_nothing():
    assert not logs.settings(LogConfig(type="none")).readable
    assert logs.settings(LogConfig(type="json-file")).readable


def test_both_formats_read_alike(tmp_path):
    """conmon's CRI lines (partial ones joined as Docker prints them, times turned to UTC) and
    Docker's json-file records, in logs written before conmon."""
    cri, jsonfile = tmp_path / "cri.log", tmp_path / "json.log"
    cri.write_bytes(
        cri_line("stderr", NS + 5, "héllo".encode())
        + cri_line("stdout", NS, b"a long ", full=False)
        + cri_line("stdout", NS, b"line")
    )
    jsonfile.write_bytes(
        b"".join(
            json.dumps(r).encode() + b"\n"
            for r in (
                {"log": "h\u00e9llo\n", "stream": "stderr", "time": "2023-11-14T22:13:20.000000005Z"},
                {"log": "a long ", "stream": "stdout", "time": "2023-11-14T22:13:20Z"},
                {"log": "line\n", "stream": "stdout", "time": "2023-11-14T22:13:20Z"},
            )
        )
    )

    def entries(path: Path) -> list:
        cursor = LogCursor(path)
        out, _ = cursor.step(LogQuery(), lambda e: json.dumps([e.stream, e.time, e.data.decode()]).encode() + b"\n")
        cursor.close()
        return [json.loads(line) for line in out.splitlines()]

    expected = [
        ["stderr", "2023-11-14T22:13:20.000000005Z", "héllo\n"],
        ["stdout", "2023-11-14T22:13:20.000000000Z", "a long "],
        ["stdout", "2023-11-14T22:13:20.000000000Z", "line\n"],
    ]
    assert entries(cri) == expected
    assert [e[2] for e in entries(jsonfile)] == [e[2] for e in expected]


def test_rotation_keeps_max_files_and_never_splits_a_line(tmp_path):
    log = tmp_path / "c-json.log"
    write_lines(log, range(500), max_size=2000, max_files=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c-json.log", "c-json.log.1", "c-json.log.2"]
    for p in tmp_path.iterdir():
        assert p.read_bytes().endswith(b"\n")
    kept = numbers(read_all(log))
    assert kept == list(range(500 - len(kept), 500)) and len(kept) > 20


def test_one_file_is_replaced_not_truncated(tmp_path):
    """max-file 1: the full file is unlinked, so a reader holding it open still reads it whole."""
    log = tmp_path / "c-json.log"
    w = Writer(log, max_size=300, max_files=1)
    w.write("stdout", b"a" * 50)
    held = open(log, "rb")
    for _ in range(10):
        w.write("stdout", b"b" * 50)
    w.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c-json.log"]
    assert held.read().count(b"\n") >= 2
    held.close()


def test_rotating_a_log_that_is_gone_is_nothing(tmp_path):
    assert log_rotation.rotate(tmp_path / "gone-json.log", 3) is False
    assert log_rotation.rotate(tmp_path / "gone-json.log", 1) is False
