"""Progress of long byte transfers: silent when quick, redrawn on a terminal, plain lines elsewhere."""

from __future__ import annotations

import io
from pathlib import Path

from typer.testing import CliRunner

from dockyard.cli import progress as progress_module
from dockyard.cli.main import app
from dockyard.cli.progress import Transfer

from .fake_engine import FakeEngine


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_a_quick_transfer_shows_nothing() -> None:
    clock, out = Clock(), Stream(tty=True)
    with Transfer("Saving x", stream=out, clock=clock) as t:
        for _ in range(100):
            clock.now += 0.001
            t.add(1 << 20)
    assert out.getvalue() == ""


def test_a_terminal_gets_one_line_redrawn_then_the_total() -> None:
    clock, out = Clock(), Stream(tty=True)
    with Transfer("Loading x.tar", total=10_000_000, stream=out, clock=clock) as t:
        for _ in range(20):  # 2.5 s
            clock.now += 0.125
            t.add(500_000)
    text = out.getvalue()
    frames = text.split("\r\x1b[2K")[1:]
    assert len(frames) == 14  # from 1 s on, every 0.1 s or more: each of the last 13 adds, and the total
    assert frames[0] == "Loading x.tar  [===========>                  ]  4MB/10MB  4MB/s"
    assert frames[-2] == "Loading x.tar  [=============================>]  10MB/10MB  4MB/s"
    assert frames[-1] == "Loading x.tar: 10MB in 2.5s\n"


def test_elsewhere_plain_lines_every_few_seconds() -> None:
    clock, out = Clock(), Stream(tty=False)
    chunks = [b"x" * 1000] * 130
    sent = b""
    t = Transfer("Exporting web", stream=out, clock=clock)
    for chunk in t.wrap(iter(chunks)):
        clock.now += 0.125
        sent += chunk
    assert len(sent) == 130_000
    assert out.getvalue().splitlines() == [
        "Exporting web: 9kB (9kB/s)",  # first at 1 s (the 9th chunk, counted before the clock moves on)
        "Exporting web: 49kB (8.17kB/s)",  # then every 5 s
        "Exporting web: 89kB (8.09kB/s)",
        "Exporting web: 129kB (8.06kB/s)",
        "Exporting web: 130kB in 16.2s",  # wrap() finishes when the chunks end
    ]
    assert "\r" not in out.getvalue()


def test_save_reports_on_stderr_and_keeps_stdout_for_the_tar(
    tmp_path: Path, runner: CliRunner, engine: FakeEngine, monkeypatch
) -> None:
    clock = Clock()

    def ticking() -> float:
        clock.now += 0.5  # every look at the clock is 0.5 s later: a slow transfer
        return clock.now

    monkeypatch.setattr(progress_module, "_clock", ticking)
    out = tmp_path / "busybox.tar"
    result = runner.invoke(app, ["-H", engine.host, "save", "-o", str(out), "busybox"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == b"".join(bytes([65 + n]) * 65536 for n in range(5))
    lines = result.stderr.splitlines()
    assert lines[0].startswith("Saving busybox: ") and lines[-1].startswith("Saving busybox: 328kB in ")
    assert result.stdout == ""


def test_a_quick_save_to_stdout_is_only_the_tar(runner: CliRunner, engine: FakeEngine) -> None:
    result = runner.invoke(app, ["-H", engine.host, "save", "busybox"])
    assert result.exit_code == 0, result.output
    assert len(result.stdout_bytes) == 5 * 65536 and result.stderr == ""
