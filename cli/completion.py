"""Shell completion: ``dockyard completion bash|zsh|fish`` prints the script, and the
package installs the same scripts where each shell looks for them.

The scripts ask the program itself for candidates: they run ``dockyard`` with
``_DOCKYARD_COMPLETE=complete_<shell>`` and the words typed so far, and the lazy
root group (:mod:`dockyard.cli.lazy`) answers from the command table without
importing a command module, except the one whose options are being completed.
The protocol and the scripts are typer's (click's ``ShellComplete`` classes);
:func:`enable` registers them, which ``dockyard.cli.main`` does only when the
variable is set, so ordinary commands never pay for it.

``contrib/completion/`` holds the scripts as files, installed by ``pyproject.toml``
(``data-files``) under ``<prefix>/share`` and linked into the system's completion
folders by ``contrib/setup.sh``; a test keeps them equal to this command's output.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

__all__ = ["COMPLETE_VAR", "FILES", "Shell", "completion", "enable", "script"]

COMPLETE_VAR = "_DOCKYARD_COMPLETE"


class Shell(str, Enum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


#: where each shell's script lives in the source tree and under ``<prefix>/share`` once installed
FILES = {
    Shell.bash: ("contrib/completion/dockyard", "share/bash-completion/completions/dockyard"),
    Shell.zsh: ("contrib/completion/_dockyard", "share/zsh/site-functions/_dockyard"),
    Shell.fish: ("contrib/completion/dockyard.fish", "share/fish/vendor_completions.d/dockyard.fish"),
}


def enable() -> None:
    """Register the completion classes of bash, zsh and fish with click."""
    from typer._completion_classes import completion_init

    completion_init()


# typer's zsh script only registers itself with compdef; installed in $fpath it is the body of the
# autoloaded _dockyard function, which must also answer the first completion it is loaded for
_ZSH = (
    """#compdef dockyard

_dockyard_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" %s=complete_zsh dockyard)
}

if [ "$funcstack[1]" = "_dockyard" ]; then
  _dockyard_completion "$@"
else
  compdef _dockyard_completion dockyard
fi
"""
    % COMPLETE_VAR
)


def script(shell: Shell) -> str:
    if shell is Shell.zsh:
        return _ZSH
    from typer._completion_shared import get_completion_script

    return get_completion_script(prog_name="dockyard", complete_var=COMPLETE_VAR, shell=shell.value) + "\n"


def completion(
    shell: Annotated[Shell, typer.Argument(help="The shell to print the script for")],
) -> None:
    """Output the shell completion script for bash, zsh or fish.

    The package installs these scripts already (contrib/setup.sh links them where the
    shells look); print one to load it by hand.
    """
    typer.echo(script(shell), nl=False)
