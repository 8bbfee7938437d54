"""Every ``dockyard`` command: its name, where its function lives, and the line ``--help`` shows.

The CLI lists commands from this table and builds only the one that runs
(:mod:`dockyard.cli.lazy`): ``dockyard ps`` imports ``cli/container.py`` and turns
one function signature into a command, instead of importing every module and
building all of the tree before parsing a word.  So this module imports nothing.

A command is ``"module:function"`` under ``dockyard.cli``; the same function may
appear under several names (docker's top-level aliases, docker/cli
``RegisterLegacy``, and its hidden spellings such as ``container list``).  A group is
a resource module's typer sub-app (its ``app``) plus its own table.  Each summary is
the first paragraph of the function's docstring, as typer would show it; a test
holds them equal.
"""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["COMMANDS", "COMMON", "DAEMON", "MANAGEMENT", "PASSTHROUGH", "PS_ARGS", "ROOT", "Command", "Group", "lookup"]

# Help panels of the top-level listing.
COMMON = "Common Commands"
MANAGEMENT = "Management Commands"
COMMANDS = "Other Commands"
DAEMON = "Daemon"

#: ``run``/``create``/``exec``: everything after IMAGE (or CONTAINER) belongs to the command,
#: so ``run busybox ls -l`` passes ``-l`` to ``ls``.
PASSTHROUGH: dict[str, Any] = {"allow_interspersed_args": False}
#: ``top``: everything after CONTAINER is handed to ps (``top c -o pid,comm``).
PS_ARGS: dict[str, Any] = {"allow_interspersed_args": False, "ignore_unknown_options": True}


class Command(NamedTuple):
    target: str  #: ``"module:function"`` in dockyard.cli
    summary: str  #: first paragraph of the function's docstring
    panel: str | None = None  #: rich help panel (None: typer's "Commands")
    hidden: bool = False
    settings: dict[str, Any] | None = None  #: click context settings
    serves: bool = False  #: a server: keeps ignoring SIGPIPE (see cli/main.py)


class Group(NamedTuple):
    module: str  #: module under dockyard.cli that holds the typer sub-app
    summary: str  #: the sub-app's help
    panel: str | None
    commands: dict[str, Command | Group]
    app: str = "app"  #: the sub-app's name in that module


def _c(target: str, summary: str, **kwargs: Any) -> Command:
    return Command(target, summary, **kwargs)


# Summaries shared by several names.
RUN = "Create and run a new container from an image."
CREATE = "Create a new container."
START = "Start one or more stopped containers."
STOP = "Stop one or more running containers."
RESTART = "Restart one or more containers."
KILL = "Kill one or more running containers."
WAIT = "Block until one or more containers stop, then print their exit codes."
RM = "Remove one or more containers."
PS = "List containers."
LOGS = "Fetch the logs of a container."
PORT = "List port mappings or a specific mapping for the container."
RENAME = "Rename a container."
CP = "Copy files/folders between a container and the local filesystem."
ATTACH = "Attach local standard input, output, and error streams to a running container."
DIFF = "Inspect changes to files or directories on a container's filesystem."
COMMIT = "Create a new image from a container's changes."
EXPORT = "Export a container's filesystem as a tar archive."
EXEC = "Execute a command in a running container."
PAUSE = "Pause all processes within one or more containers."
UNPAUSE = "Unpause all processes within one or more containers."
TOP = "Display the running processes of a container."
STATS = "Display a live stream of container(s) resource usage statistics."
UPDATE = "Update configuration of one or more containers."
IMAGES = "List images."
IMPORT = "Import the contents from a tarball to create a filesystem image."
RMI = "Remove one or more images."
HISTORY = "Show the history of an image."
TAG = "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE."
SAVE = "Save one or more images to a tar archive (docker-archive format)."
LOAD = "Load an image from a tar archive or STDIN."
BUILD = "Build an image from a Dockerfile."
PULL = "Download an image from a registry."
PUSH = "Upload an image to a registry (every tag of the repository when no tag is given)."
INFO = "Display system-wide information."

CONTAINER: dict[str, Command | Group] = {
    "create": _c("container:create", CREATE, settings=PASSTHROUGH),
    "run": _c("container:run", RUN, settings=PASSTHROUGH),
    "start": _c("container:start", START),
    "stop": _c("container:stop", STOP),
    "restart": _c("container:restart", RESTART),
    "kill": _c("container:kill", KILL),
    "wait": _c("container:wait", WAIT),
    "rm": _c("container:rm", RM),
    "ls": _c("container:ls", PS),
    "logs": _c("container:logs", LOGS),
    "inspect": _c("container:inspect", "Display detailed information on one or more containers."),
    # docker's alternative spellings (`docker container ps|list`, `docker container remove`)
    "ps": _c("container:ls", PS, hidden=True),
    "list": _c("container:ls", PS, hidden=True),
    "remove": _c("container:rm", RM, hidden=True),
    "port": _c("container:port", PORT),
    "rename": _c("container:rename", RENAME),
    "cp": _c("container:cp", CP),
    "attach": _c("container:attach", ATTACH),
    "diff": _c("layers:diff", DIFF),
    "commit": _c("layers:commit", COMMIT),
    "export": _c("layers:export", EXPORT),
    "exec": _c("exec_commands:exec_", EXEC, settings=PASSTHROUGH),
    "pause": _c("exec_commands:pause", PAUSE),
    "unpause": _c("exec_commands:unpause", UNPAUSE),
    "top": _c("exec_commands:top", TOP, settings=PS_ARGS),
    "stats": _c("exec_commands:stats", STATS),
    "update": _c("exec_commands:update", UPDATE),
}

IMAGE: dict[str, Command | Group] = {
    "ls": _c("image:ls", IMAGES),
    "import": _c("image:import_", IMPORT),
    "inspect": _c("image:inspect", "Display detailed information on one or more images."),
    "rm": _c("image:rm", RMI),
    # docker's alternative spellings (`docker image list`, `docker image remove`)
    "list": _c("image:ls", IMAGES, hidden=True),
    "remove": _c("image:rm", RMI, hidden=True),
    "history": _c("layers:history", HISTORY),
    "tag": _c("layers:tag", TAG),
    "save": _c("layers:save", SAVE),
    "load": _c("layers:load", LOAD),
    "build": _c("build:build", BUILD),
    "pull": _c("registry:pull", PULL),
    "push": _c("registry:push", PUSH),
}

NETWORK: dict[str, Command | Group] = {
    "ls": _c("network:ls", "List networks."),
    "inspect": _c("network:inspect", "Display detailed information on one or more networks."),
    "create": _c("network:create", "Create a network."),
    "rm": _c("network:rm", "Remove one or more networks."),
    "connect": _c("network:connect", "Connect a container to a network."),
    "disconnect": _c("network:disconnect", "Disconnect a container from a network."),
    "prune": _c("network:prune", "Remove all unused networks."),
}

REGISTRY_USER: dict[str, Command | Group] = {
    "add": _c(
        "registry_server:user_add",
        "Add an account (active at once), or with --users add or replace one in an htpasswd file.",
    ),
    "passwd": _c("registry_server:user_passwd", "Set an account's password."),
    "rm": _c("registry_server:user_rm", "Remove accounts (their repositories stay)."),
    "list": _c("registry_server:user_list", "List the accounts."),
}

REGISTRY: dict[str, Command | Group] = {
    "serve": _c(
        "registry_server:serve",
        "Run a registry (OCI distribution API v2, token auth, search) until SIGINT/SIGTERM.",
        serves=True,
    ),
    "adduser": _c("registry_server:adduser", "The former spelling of ``user add``.", hidden=True),
    "gc": _c(
        "registry_server:gc", "Delete blobs no manifest references (safe while replicas serve; see docs/registry.md)."
    ),
    "describe": _c(
        "registry_server:describe", "Show or set a repository's description and visibility (owner or admin)."
    ),
    "delete": _c("registry_server:delete", "Delete a repository from a registry (owner or admin)."),
    "user": Group(
        "registry_server", "Manage the accounts of a registry (in its storage)", None, REGISTRY_USER, app="user_app"
    ),
}

SYSTEM: dict[str, Command | Group] = {
    "info": _c("system:info", INFO),
}

#: The top level, in the order ``dockyard --help`` lists it within each panel.
ROOT: dict[str, Command | Group] = {
    "run": _c("container:run", RUN, panel=COMMON, settings=PASSTHROUGH),
    "build": _c("build:build", BUILD, panel=COMMON),
    "ps": _c("container:ls", PS, panel=COMMON),
    "images": _c("image:ls", IMAGES, panel=COMMON),
    "version": _c("system:version", "Show the dockyard version information.", panel=COMMON),
    "info": _c("system:info", INFO, panel=COMMON),
    "create": _c("container:create", CREATE, panel=COMMANDS, settings=PASSTHROUGH),
    "import": _c("image:import_", IMPORT, panel=COMMANDS),
    "inspect": _c("inspect:inspect", "Return low-level information on dockyard objects.", panel=COMMANDS),
    "kill": _c("container:kill", KILL, panel=COMMANDS),
    "logs": _c("container:logs", LOGS, panel=COMMANDS),
    "restart": _c("container:restart", RESTART, panel=COMMANDS),
    "rm": _c("container:rm", RM, panel=COMMANDS),
    "rmi": _c("image:rm", RMI, panel=COMMANDS),
    "start": _c("container:start", START, panel=COMMANDS),
    "stop": _c("container:stop", STOP, panel=COMMANDS),
    "wait": _c("container:wait", WAIT, panel=COMMANDS),
    "diff": _c("layers:diff", DIFF, panel=COMMANDS),
    "commit": _c("layers:commit", COMMIT, panel=COMMANDS),
    "export": _c("layers:export", EXPORT, panel=COMMANDS),
    "history": _c("layers:history", HISTORY, panel=COMMANDS),
    "tag": _c("layers:tag", TAG, panel=COMMANDS),
    "save": _c("layers:save", SAVE, panel=COMMANDS),
    "load": _c("layers:load", LOAD, panel=COMMANDS),
    "port": _c("container:port", PORT, panel=COMMANDS),
    "rename": _c("container:rename", RENAME, panel=COMMANDS),
    "cp": _c("container:cp", CP, panel=COMMANDS),
    "attach": _c("container:attach", ATTACH, panel=COMMANDS),
    "events": _c("events:events", "Get real time events from the server.", panel=COMMANDS),
    "pull": _c("registry:pull", PULL, panel=COMMON),
    "push": _c("registry:push", PUSH, panel=COMMON),
    "login": _c(
        "registry:login", "Log in to a registry (a registry with open accounts registers a new name).", panel=COMMANDS
    ),
    "logout": _c("registry:logout", "Log out from a registry.", panel=COMMANDS),
    "search": _c("registry:search", "Search a registry for images.", panel=COMMANDS),
    "exec": _c("exec_commands:exec_", EXEC, panel=COMMANDS, settings=PASSTHROUGH),
    "pause": _c("exec_commands:pause", PAUSE, panel=COMMANDS),
    "unpause": _c("exec_commands:unpause", UNPAUSE, panel=COMMANDS),
    "top": _c("exec_commands:top", TOP, panel=COMMANDS, settings=PS_ARGS),
    "stats": _c("exec_commands:stats", STATS, panel=COMMANDS),
    "update": _c("exec_commands:update", UPDATE, panel=COMMANDS),
    "ui": _c(
        "ui:ui", "Open the daemon's web UI through a local port with a random token.", panel=COMMANDS, serves=True
    ),
    "completion": _c(
        "completion:completion", "Output the shell completion script for bash, zsh or fish.", panel=COMMANDS
    ),
    "daemon": _c("daemon:daemon", "Run the dockyard daemon in the foreground (needs root).", panel=DAEMON, serves=True),
    "container": Group("container", "Manage containers", MANAGEMENT, CONTAINER),
    "image": Group("image", "Manage images", MANAGEMENT, IMAGE),
    "network": Group("network", "Manage networks", MANAGEMENT, NETWORK),
    "registry": Group("registry_server", "Run a registry, manage its accounts and repositories", MANAGEMENT, REGISTRY),
    "system": Group("system", "Manage dockyard", MANAGEMENT, SYSTEM),
}


def lookup(words: list[str]) -> Command | Group | None:
    """The entry a command path names (``["registry", "serve"]``), or None."""
    table: dict[str, Command | Group] = ROOT
    entry: Command | Group | None = None
    for word in words:
        entry = table.get(word)
        if not isinstance(entry, Group):
            return entry
        table = entry.commands
    return entry
