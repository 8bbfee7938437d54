"""The lazily built command tree: the table says what typer would build, and nothing is lost.

cli/commands.py lists commands without importing them; these tests build every
command and hold the listing to it (names, summaries, panels, hidden flags,
context settings, the rendered ``--help``), check that completion and "did you
mean" still see every command, and that the pydantic-free coercion of plain
values (cli/lazy.py ``PlainValues``) answers exactly as typer's own does.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
from importlib import import_module
from typing import Any

import pytest
from typer._click import Context
from typer._completion_classes import BashComplete
from typer.main import get_command
from typer.testing import CliRunner

from dockyard.cli.commands import ROOT, Command, Group
from dockyard.cli.lazy import LazyGroup, Listing, PlainValues
from dockyard.cli.main import app, serves


def function_of(entry: Command) -> Any:
    module, _, name = entry.target.partition(":")
    return getattr(import_module(f"dockyard.cli.{module}"), name)


def every_entry(table: dict[str, Command | Group] = ROOT, path: tuple[str, ...] = ()) -> list[tuple[list[str], Any]]:
    entries: list[tuple[list[str], Any]] = []
    for name, entry in table.items():
        entries.append(([*path, name], entry))
        if isinstance(entry, Group):
            entries += every_entry(entry.commands, (*path, name))
    return entries


def built(path: list[str]) -> tuple[Any, Any]:
    """The command at ``path`` as the CLI builds it when it runs, with its context."""
    group = get_command(app)
    ctx = Context(group, info_name="dockyard")
    command = group
    for word in path:
        _, command, _ = command.resolve_command(ctx, [word])
        ctx = Context(command, info_name=word, parent=ctx)
    return command, ctx


@pytest.mark.parametrize(("path", "entry"), every_entry(), ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_table_summary_is_the_docstring_typer_shows(path: list[str], entry: Command | Group) -> None:
    if isinstance(entry, Group):
        assert entry.summary == getattr(import_module(f"dockyard.cli.{entry.module}"), entry.app).info.help
        return
    doc = inspect.getdoc(function_of(entry)) or ""
    assert entry.summary == doc.split("\n\n")[0].replace("\n", " ")


@pytest.mark.parametrize(("path", "entry"), every_entry(), ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_listing_matches_the_built_command(path: list[str], entry: Command | Group) -> None:
    command, _ = built(path)
    assert not isinstance(command, Listing)
    assert command.name == path[-1]
    assert command.hidden == getattr(entry, "hidden", False)
    assert (getattr(command, "rich_help_panel", None) or None) == entry.panel
    if isinstance(entry, Group):
        assert isinstance(command, LazyGroup) and command.no_args_is_help
        assert list(command.commands) == list(entry.commands)
        return
    assert command.callback.__wrapped__ is function_of(entry)
    ctx = command.make_context(path[-1], ["--help"], resilient_parsing=True)
    for key, value in (entry.settings or {}).items():
        assert getattr(ctx, key) == value


def help_text(argv: list[str]) -> str:
    result = CliRunner().invoke(app, [*argv, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("path", [[], *[p for p, e in every_entry() if isinstance(e, Group)]])
def test_help_listing_is_what_the_built_commands_render(path: list[str], monkeypatch) -> None:
    lazy = help_text(path)
    # Render again with every command of that level built first.
    build = LazyGroup.add_lazy

    def add_built(self: LazyGroup, entries: Any) -> None:
        build(self, entries)
        for name in list(entries):
            self.commands[name] = self.build(name, entries[name])

    monkeypatch.setattr(LazyGroup, "add_lazy", add_built)
    assert help_text(path) == lazy
    table: Any = ROOT
    for word in path:
        table = table[word].commands
    for name, entry in table.items():
        assert (f" {name} " in lazy) is not getattr(entry, "hidden", False)


def test_help_builds_nothing(monkeypatch) -> None:
    calls: list[str] = []
    build = LazyGroup.build
    monkeypatch.setattr(LazyGroup, "build", lambda self, name, entry: (calls.append(name), build(self, name, entry))[1])
    help_text([])
    assert calls == []
    help_text(["image"])
    assert calls == ["image"]


def test_did_you_mean_sees_listed_commands() -> None:
    result = CliRunner().invoke(app, ["imagse"])
    assert result.exit_code == 2
    assert "No such command 'imagse'" in result.output and "'images'" in result.output
    result = CliRunner().invoke(app, ["container", "lss"])
    assert result.exit_code == 2 and "'ls'" in result.output


def completions(args: list[str], incomplete: str) -> list[str]:
    complete = BashComplete(get_command(app), {}, "dockyard", "_DOCKYARD_COMPLETE")
    return [item.value for item in complete.get_completions(args, incomplete)]


def test_completion_of_names_and_options_through_the_lazy_groups() -> None:
    assert completions([], "pu") == ["pull", "push"]
    assert completions(["container"], "l") == ["ls", "logs"]  # table order; the hidden `list` is not offered
    assert completions(["-H", "unix:///x", "ps"], "--n") == ["--no-trunc"]
    assert completions(["image", "history"], "--") == ["--no-trunc", "--quiet", "--format", "--help"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["daemon"], True),
        (["-D", "daemon", "-H", "unix:///x"], True),
        (["-H", "tcp://h:1", "registry", "serve"], True),
        (["--log-level", "debug", "registry", "serve", "--listen", "x"], True),
        (["ps"], False),
        (["registry", "adduser", "serve"], False),
        (["registry"], False),
        (["-H", "daemon", "ps"], False),
        (["logs", "daemon"], False),
        ([], False),
        (["nosuch", "serve"], False),
    ],
)
def test_servers_are_recognised_from_argv(argv: list[str], expected: bool) -> None:
    assert serves(argv) is expected


# -- plain values versus typer's coercion ------------------------------------------------------------

SAMPLES = [
    "0",
    "-1",
    "7",
    "007",
    "+3",
    " 4",
    "1_000",
    "2.5",
    "abc",
    "",
    "debug",
    "DEBUG",
    "Info",
    "container",
    "x=y",
    "/tmp",
]


def outcome(coerce: Any, value: Any, param: Any, ctx: Any) -> tuple[str, Any]:
    try:
        return "ok", coerce(value, param, ctx)
    except Exception as exc:  # the comparison is of exactly what each raises
        return type(exc).__name__, str(exc)


def every_param() -> list[tuple[str, Any, Any]]:
    found = []
    paths = [[]] + [path for path, entry in every_entry()]
    for path in paths:
        command, ctx = built(path)
        params = list(command.params)
        help_option = command.get_help_option(ctx)
        if help_option is not None:
            params.append(help_option)
        found += [(" ".join(path) + " " + (p.name or ""), p, ctx) for p in params]
    return found


def test_plain_values_coerce_as_typer_does() -> None:
    from typer._coercion import build_runtime_param

    checked = 0
    for where, param, ctx in every_param():
        runtime = param._runtime_param
        assert isinstance(runtime, PlainValues), where  # every parameter of the CLI gets the fast path
        typer_runtime = build_runtime_param(param.type_descriptor)
        multiple = param.multiple or param.nargs == -1
        values: list[Any] = [None, param.default, *SAMPLES]
        if multiple:
            values += [tuple(SAMPLES[i : i + 2]) for i in range(0, len(SAMPLES), 2)] + [(), ["a", "b"]]
        for value in values:
            mine = outcome(runtime.coerce, value, param, ctx)
            theirs = outcome(typer_runtime.coerce, value, param, ctx)
            assert mine == theirs, (where, value)
            checked += 1
    assert checked > 1000


def test_the_eagerly_assembled_cli_of_older_scripts_still_runs(tmp_path) -> None:
    """tests/integration/test_exec_pause_stats.py registers exec & co. on ``main.app`` itself."""
    launcher = (
        "from dockyard.cli import main, exec_commands\n"
        "if not any(c.name == 'exec' for c in main.app.registered_commands):\n"
        "    exec_commands.register(main.app, main.container.app, main.COMMANDS)\n"
        "main.main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", launcher, "exec", "--help"],
        capture_output=True,
        timeout=60,
        env={"COLUMNS": "120", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode() == help_text(["exec"])
