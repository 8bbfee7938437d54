"""Shell completion: the scripts the package installs, and the answers the program gives them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dockyard.cli.completion import COMPLETE_VAR, FILES, Shell, script
from dockyard.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = Path(sys.executable).parent / "dockyard"


@pytest.mark.parametrize("shell", list(Shell))
def test_installed_scripts_are_what_the_command_prints(shell: Shell) -> None:
    source, _ = FILES[shell]
    assert (ROOT / source).read_text() == script(shell)
    result = CliRunner().invoke(app, ["completion", shell.value])
    assert result.exit_code == 0 and result.stdout == script(shell)


def test_the_package_installs_them_under_share() -> None:
    data_files = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    installed = {f"{folder}/{Path(f).name}" for folder, files in data_files.items() for f in files}
    assert installed == {target for _, target in FILES.values()}
    sources = {f for files in data_files.values() for f in files}
    assert sources == {source for source, _ in FILES.values()}
    setup = (ROOT / "contrib/setup.sh").read_text()
    for source, _ in FILES.values():
        assert Path(source).name + ":/usr/share/" in setup  # linked where the system's shells look


def _answer(env: dict[str, str]) -> list[str]:
    done = subprocess.run([str(PROGRAM)], env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_bash_completes_commands_and_options_through_the_script(tmp_path: Path) -> None:
    assert shutil.which("bash") and PROGRAM.exists()
    script_file = ROOT / FILES[Shell.bash][0]
    program = f"""
        source {script_file}
        complete -p dockyard
        COMP_WORDS=(dockyard pu); COMP_CWORD=1; _dockyard_completion dockyard; echo "${{COMPREPLY[*]}}"
        COMP_WORDS=(dockyard ps --no); COMP_CWORD=2; _dockyard_completion dockyard; echo "${{COMPREPLY[*]}}"
        COMP_WORDS=(dockyard network ""); COMP_CWORD=2; _dockyard_completion dockyard; echo "${{COMPREPLY[*]}}"
    """
    env = {**os.environ, "PATH": f"{PROGRAM.parent}:{os.environ.get('PATH', '')}"}
    done = subprocess.run(["bash", "--norc", "-c", program], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "complete -o default -F _dockyard_completion dockyard"
    assert lines[1].split() == ["pull", "push"]
    assert lines[2].split() == ["--no-trunc"]
    assert lines[3].split() == ["ls", "inspect", "create", "rm", "connect", "disconnect", "prune"]


def test_zsh_protocol() -> None:
    lines = _answer({COMPLETE_VAR: "complete_zsh", "_TYPER_COMPLETE_ARGS": "dockyard ima"})
    assert "images" in lines[0] and "image" in lines[0] and "push" not in lines[0]


def test_fish_protocol() -> None:
    lines = _answer(
        {
            COMPLETE_VAR: "complete_fish",
            "_TYPER_COMPLETE_FISH_ACTION": "get-args",
            "_TYPER_COMPLETE_ARGS": "dockyard logs --ti",
        }
    )
    assert [line.split("\t")[0] for line in lines] == ["--timestamps"]
