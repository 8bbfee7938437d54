"""The json-file writer and its rotation (dockyard.jsonfile), as the lxc shim runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard import jsonfile
from dockyard.jsonfile import PARTIAL, JsonLogWriter, rotated_path

NS = 1_700_000_000_123_456_789


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def all_records(path: Path, files: int) -> list[dict]:
    """Every record still on disk, oldest first."""
    out = []
    for index in range(files - 1, -1, -1):
        p = Path(rotated_path(str(path), index))
        if p.exists():
            out += records(p)
    return out


def test_records_are_dockers_format(tmp_path):
    log = tmp_path / "c-json.log"
    w = JsonLogWriter(str(log))
    w.write(1, b"hello\nwor", NS)
    w.write(2, b"oops <&>\n", NS)
    w.write(1, b"ld\n\xff\n", NS)
    w.close()
    raw = log.read_text().splitlines()
    assert raw[0] == '{"log":"hello\\n","stream":"stdout","time":"2023-11-14T22:13:20.123456789Z"}'
    assert '"log":"oops \\u003c\\u0026\\u003e\\n"' in raw[1]  # escaped as Go escapes it
    assert [(r["stream"], r["log"]) for r in records(log)] == [
        ("stdout", "hello\n"), ("stderr", "oops <&>\n"), ("stdout", "world\n"), ("stdout", "\ufffd\n")]


def test_long_lines_become_partial_records_and_the_rest_is_flushed_at_the_end(tmp_path):
    log = tmp_path / "c-json.log"
    w = JsonLogWriter(str(log))
    w.write(1, b"x" * (PARTIAL * 2 + 10), NS)
    assert [len(r["log"]) for r in records(log)] == [PARTIAL, PARTIAL]
    w.write(1, b"no newline", NS)
    w.flush(1, NS)
    w.close()
    assert [r["log"] for r in records(log)][2:] == ["x" * 10 + "no newline"]


def test_rotation_keeps_max_files_never_splits_a_record_and_loses_nothing_kept(tmp_path):
    log = tmp_path / "c-json.log"
    w = JsonLogWriter(str(log), max_size=2000, max_files=3)
    lines = [f"line {i}\n".encode() for i in range(500)]
    for i in range(0, 500, 7):  # output arrives in pieces of several lines
        w.write(1, b"".join(lines[i:i + 7]), NS)
    w.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["c-json.log", "c-json.log.1", "c-json.log.2"]
    for name in names:
        data = (tmp_path / name).read_bytes()
        assert 0 < len(data) <= 2000 and data.endswith(b"\n")
    kept = [r["log"] for r in all_records(log, 3)]
    # what is kept is the newest output, complete and in order
    assert kept == [line.decode() for line in lines[-len(kept):]]
    assert len(kept) > 40


def test_one_file_is_replaced_not_truncated(tmp_path):
    """max-file 1: the full file is unlinked, so a reader holding it open still reads it whole."""
    log = tmp_path / "c-json.log"
    w = JsonLogWriter(str(log), max_size=300, max_files=1)
    w.write(1, b"a" * 50 + b"\n", NS)
    held = open(log, "rb")
    for _ in range(10):
        w.write(1, b"b" * 50 + b"\n", NS)
    w.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c-json.log"]
    first = [json.loads(line)["log"] for line in held.read().splitlines()]
    held.close()
    assert first[0] == "a" * 50 + "\n" and len(first) >= 2
    assert os.path.getsize(log) <= 300


def test_a_record_larger_than_max_size_still_gets_written(tmp_path):
    log = tmp_path / "c-json.log"
    w = JsonLogWriter(str(log), max_size=100, max_files=2)
    w.write(1, b"small\n", NS)
    w.write(1, b"y" * 500 + b"\n", NS)
    w.close()
    assert [r["log"] for r in all_records(log, 2)] == ["small\n", "y" * 500 + "\n"]


def test_write_errors_drop_output_instead_of_raising(tmp_path, capfd):
    log = tmp_path / "c-json.log"
    w = JsonLogWriter(str(log))
    os.close(w.fd)
    w.fd = os.open("/dev/full", os.O_WRONLY)
    w.write(1, b"lost\n", NS)
    w.write(1, b"lost too\n", NS)
    w.close()
    assert capfd.readouterr().err.count("dropping output") == 1


def test_invalid_limits_are_refused(tmp_path):
    with pytest.raises(ValueError):
        JsonLogWriter(str(tmp_path / "x"), max_size=-1)
    with pytest.raises(ValueError):
        JsonLogWriter(str(tmp_path / "x"), max_files=0)


def test_the_module_runs_standalone_as_the_shim_loads_it(tmp_path):
    """No package imports: ``python -I -S`` with only the module's directory on the path."""
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import jsonfile; "
        "w = jsonfile.JsonLogWriter(sys.argv[2], 50, 2); [w.write(1, b'hello\\n', 0) for _ in range(5)]; "
        "print(sorted(sys.modules.keys() & {'dockyard', 'json', 'pydantic'}))")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", script, str(Path(jsonfile.__file__).parent),
                          str(tmp_path / "log")], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert (tmp_path / "log.1").exists()
