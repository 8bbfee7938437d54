"""Every command's ``--help`` renders and ends with an example that parses as that command."""

from __future__ import annotations

import shlex

import pytest
from typer.testing import CliRunner

from dockyard.cli.commands import ROOT, Command, Group
from dockyard.cli.examples import EXAMPLES
from dockyard.cli.main import app


def _commands(table: dict, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Command]]:
    found = []
    for name, entry in table.items():
        if isinstance(entry, Group):
            found += _commands(entry.commands, (*path, name))
        else:
            found.append(((*path, name), entry))
    return found


COMMANDS = [(path, entry) for path, entry in _commands(ROOT) if not entry.hidden]


def test_every_command_has_an_example_and_every_example_a_command() -> None:
    targets = {entry.target for _, entry in _commands(ROOT)}
    assert sorted(targets - set(EXAMPLES)) == []
    assert sorted(set(EXAMPLES) - targets) == []


@pytest.mark.parametrize(("path", "entry"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_help_renders_with_its_example(path: tuple[str, ...], entry: Command) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "Examples:" in result.output
    for line in EXAMPLES[entry.target].splitlines():
        assert line.strip() in result.output


def _example_commands() -> list[list[str]]:
    """Each example line that runs dockyard, as argv (the part before a pipe; $(...) left out)."""
    found = []
    for text in EXAMPLES.values():
        for line in text.splitlines():
            line = line.split(" | ")[-1].split(" > ")[0]
            if "$(" in line or "<(" in line:
                continue
            argv = shlex.split(line)
            if argv and argv[0] == "dockyard":
                found.append(argv[1:])
    return found


@pytest.mark.parametrize("argv", _example_commands(), ids=" ".join)
def test_examples_parse(argv: list[str]) -> None:
    """Each example's words are accepted by the command's parser (nothing runs)."""
    group = app_command()
    ctx = group.make_context("dockyard", list(argv), resilient_parsing=False)
    words = _rest(ctx)
    command_ctx = ctx
    command = group
    while words:
        name, command, words = command.resolve_command(command_ctx, words)
        command_ctx = command.make_context(name, words, parent=command_ctx)
        if not hasattr(command, "resolve_command"):
            break
        words = _rest(command_ctx)


def _rest(ctx) -> list[str]:
    return [*getattr(ctx, "_protected_args", getattr(ctx, "protected_args", [])), *ctx.args]


def app_command():
    from typer.main import get_command

    return get_command(app)
