"""Hook specifications: the contract between dockyard's core and its drivers.

Glossary
--------
``layer_id``
    64-hex name of a layer in the storage driver.  Image layers are named by
    their chain ID (sha256 over the parent chain and the layer's diff ID);
    a container's read-write layer by the container ID.
``parent_id``
    the ``layer_id`` a layer is created on top of, or ``None`` for a base layer.
``container_id``
    64-hex ID of a container, as the Engine API shows it.
``diff``
    a layer tar in the OCI / Docker image format: regular tar entries for added
    or changed paths, ``.wh.<name>`` for deleted ones and ``.wh..wh..opq`` to mark a
    directory opaque (everything below it in lower layers hidden).

How drivers plug in
-------------------
A driver is a class found by entry point in one of the groups
``dockyard.storage``, ``dockyard.exec``, ``dockyard.network`` and
``dockyard.distribution``.  It is constructed as ``Driver(root, options)`` where
``root`` is ``<data-root>/<kind>/<name>`` and ``options`` a dict of
``--storage-opt``-style settings, after its ``check_supported()`` classmethod has
not raised :class:`~dockyard.errors.DriverNotSupported`.  Its hook
implementations are methods marked with :data:`dockyard.hookimpl`.  Only the
chosen driver of each kind is registered with the plugin manager.

Driver operations are ``firstresult``: the first non-``None`` result wins, so a
driver operation that has a core fallback (marked *optional* below) must return
something other than ``None`` when it handles the call.  Core code never calls
``pm.hook`` directly; it goes through the typed façades in
:mod:`dockyard.drivers`, which turn a missing implementation into
:class:`~dockyard.errors.NotSupportedByDriver` (HTTP 501).

Blocking: every driver hook is synchronous.  The daemon calls them from worker
threads, never from its event loop, so a driver may block (mount, spawn, wait).

Errors: drivers raise from :mod:`dockyard.errors` only, translating ``OSError``,
netlink and subprocess failures at their boundary.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import pluggy

if TYPE_CHECKING:
    from dockyard.models.runtime import (
        Change,
        ExitStatus,
        EndpointRequest,
        NetworkAttachment,
        NetworkRequest,
        ProcessSpec,
        ProcessState,
        Resources,
        Runtimes,
        RuntimeSpec,
    )

PROJECT = "dockyard"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

# ---------------------------------------------------------------------------
# storage: layers, mounts, diffs  (group ``dockyard.storage``)
# ---------------------------------------------------------------------------


@hookspec(firstresult=True)
def storage_create_layer(layer_id: str, parent_id: str | None) -> bool | None:
    """Create an empty layer, or one whose content is ``parent_id``'s.

    Implemented by: storage driver (required).  firstresult.
    Returns ``True``.  The new layer is visible to :func:`storage_exists` only
    once complete: a crash midway must not leave a layer that looks usable.
    Raises ``Conflict`` if ``layer_id`` exists, ``NotFound`` if the parent does
    not.  Not idempotent.
    """


@hookspec(firstresult=True)
def storage_remove_layer(layer_id: str) -> bool | None:
    """Remove a layer and its content.

    Implemented by: storage driver (required).  firstresult.  Returns ``True``.
    Raises ``NotFound`` if absent, ``Conflict`` if the layer is mounted or has
    children.
    """


@hookspec(firstresult=True)
def storage_mount(layer_id: str) -> Path | None:
    """Mount a layer (with its parents) and return the root directory.

    Implemented by: storage driver (required).  firstresult.  Reference-counted:
    each call must be matched by :func:`storage_unmount`; the second and later
    calls return the same path without mounting again.  Raises ``NotFound``.
    """


@hookspec(firstresult=True)
def storage_unmount(layer_id: str) -> bool | None:
    """Drop one mount reference; unmount when it reaches zero.

    Implemented by: storage driver (required).  firstresult.  Returns ``True``.
    Unmounting a layer that is not mounted is a no-op returning ``True``.
    """


@hookspec(firstresult=True)
def storage_path(layer_id: str) -> Path | None:
    """Where the layer's root is while mounted, else ``None``.

    Implemented by: storage driver (required).  firstresult.
    """


@hookspec(firstresult=True)
def storage_parent(layer_id: str) -> str | None:
    """The layer's parent id, or ``""`` for a base layer.

    Implemented by: storage driver (required).  firstresult.  Raises ``NotFound``.
    """


@hookspec(firstresult=True)
def storage_exists(layer_id: str) -> bool | None:
    """Whether a complete layer of that id exists.

    Implemented by: storage driver (required).  firstresult.  Never raises.
    """


@hookspec(firstresult=True)
def storage_layers() -> list[str] | None:
    """Ids of every complete layer the driver holds (used to reconcile with the
    metadata store after a crash).

    Implemented by: storage driver (required).  firstresult.
    """


@hookspec(firstresult=True)
def storage_apply_diff(layer_id: str, diff: BinaryIO) -> int | None:
    """Apply an uncompressed layer tar (with ``.wh.`` whiteouts) to a layer
    created moments ago, and return the number of content bytes written.

    Implemented by: storage driver (required).  firstresult.  Raises
    ``InvalidParameter`` for a malformed tar or one that escapes the layer
    (absolute or ``..`` paths through symlinks); the layer is then left for the
    caller to remove.
    """


@hookspec(firstresult=True)
def storage_diff(layer_id: str) -> BinaryIO | None:
    """A layer tar of what ``layer_id`` changes relative to its parent.

    Implemented by: storage driver (optional; the core's naive fallback
    compares the mounted layer with its mounted parent).  firstresult.
    The caller closes the returned stream.
    """


@hookspec(firstresult=True)
def storage_changes(layer_id: str) -> list[Change] | None:
    """Paths added (A), changed (C) and deleted (D) relative to the parent,
    exactly as ``docker diff`` lists them (parents of changes count as C).

    Implemented by: storage driver (optional; naive fallback).  firstresult.
    """


@hookspec(firstresult=True)
def storage_diff_size(layer_id: str) -> int | None:
    """Bytes of content this layer adds relative to its parent.

    Implemented by: storage driver (optional; naive fallback).  firstresult.
    """


@hookspec(firstresult=True)
def storage_status() -> list[tuple[str, str]] | None:
    """Status lines for ``info`` (e.g. ``("Backing Filesystem", "extfs")``).

    Implemented by: storage driver (required).  firstresult.
    """


@hookspec(firstresult=True)
def storage_cleanup() -> bool | None:
    """Unmount everything at daemon shutdown.  Layers are kept.

    Not called while containers run (they outlive the daemon): a new driver
    instance must adopt the mounts it finds instead of mounting again.
    Implemented by: storage driver (required).  firstresult.  Idempotent.
    """


# ---------------------------------------------------------------------------
# execution: a container's main process  (group ``dockyard.exec``)
# ---------------------------------------------------------------------------


@hookspec(firstresult=True)
def exec_create(spec: RuntimeSpec) -> bool | None:
    """Prepare a container's process without starting it.

    Implemented by: exec driver (required).  firstresult.  Returns ``True``.
    After this, :func:`exec_attach` may be called any number of times and
    :func:`exec_start` once.  The prepared process must outlive the daemon once
    started: the daemon may be killed and restarted at any time.

    ``spec.confinement`` (:class:`~dockyard.models.runtime.Confinement`) is
    decided by the core and must be applied as given, to the main process and
    to every :func:`exec_run` process: capabilities, seccomp filter,
    no_new_privileges, AppArmor profile, masked and read-only paths, read-only
    rootfs, devices and device rules, sysctls.  What the driver cannot express
    is an ``InvalidParameter``, never silently dropped.  ``spec.binds`` are
    mounted in order on the container paths given (made and resolved by the
    core; symlinks on the way are refused, nothing is created).

    The process's output goes to ``spec.log_path`` in one of the two formats
    :mod:`dockyard.logs` reads (none when it is None: ``--log-driver none``);
    the file may be renamed while the process runs (log rotation,
    :mod:`dockyard.log_rotation`), after which :func:`exec_reopen_log` asks for
    a new one.
    Raises ``Conflict`` if the container already has a live process,
    ``InvalidParameter`` for a confinement it cannot apply, ``System`` if the
    runtime cannot be prepared.
    """


@hookspec(firstresult=True)
def exec_attach(container_id: str, stdin: bool, stdout: bool, stderr: bool) -> socket.socket | None:
    """Connect to a created or running container's streams.

    Implemented by: exec driver (required).  firstresult.  Returns a connected
    stream socket.  The driver writes the container's output to it, as Docker
    stdcopy frames (``[stream, 0, 0, 0, len_be32] + payload``, stream 1 =
    stdout, 2 = stderr) when the container has no tty and as raw bytes when it
    has one, and closes it once the process has exited and its output is
    drained.  Bytes the caller writes are the process's stdin (only if
    ``stdin``); the caller's half-close (``shutdown(SHUT_WR)``) is stdin EOF when
    the spec had ``stdin_once``.  Attaches made before :func:`exec_start` see all
    output from the first byte.  Raises ``NotFound`` if there is no process.
    """


@hookspec(firstresult=True)
def exec_start(container_id: str) -> ProcessState | None:
    """Start a created container's process and return its state (pid, start time).

    Implemented by: exec driver (required).  firstresult.  Raises ``NotFound``
    if not created, ``System`` with the runtime's reason if the start fails.
    """


@hookspec(firstresult=True)
def exec_wait(container_id: str) -> ExitStatus | None:
    """Block until the process exits and return its exit status.

    Implemented by: exec driver (required).  firstresult.  Exit codes follow
    Docker: the process's own code, or 128+N when killed by signal N.  Returns
    at once for a process that has already exited.  Raises ``NotFound``.
    """


@hookspec(firstresult=True)
def exec_kill(container_id: str, signal: int) -> bool | None:
    """Send a signal to the container's main process.

    Implemented by: exec driver (required).  firstresult.  Returns ``True``.
    Raises ``Conflict`` if the process is not running.
    """


@hookspec(firstresult=True)
def exec_stop(container_id: str, signal: int, timeout: float) -> ExitStatus | None:
    """Send ``signal``, wait up to ``timeout`` seconds, then SIGKILL; block until
    the process is gone and return its exit status.

    Implemented by: exec driver (required).  firstresult.  Idempotent: stopping
    an exited process returns its recorded status.
    """


@hookspec(firstresult=True)
def exec_state(container_id: str) -> ProcessState | None:
    """The process's state, or ``None`` if the driver knows no such container.

    Implemented by: exec driver (required).  firstresult.  Never blocks long.
    """


@hookspec(firstresult=True)
def exec_resize(container_id: str, height: int, width: int) -> bool | None:
    """Resize a tty container's terminal.

    Implemented by: exec driver (optional).  firstresult.
    """


@hookspec(firstresult=True)
def exec_reopen_log(container_id: str) -> bool | None:
    """Start writing a new log file at the container's ``log_path``: the old one was just renamed
    (log rotation), and output written to it until now stays there, complete.

    Implemented by: exec driver (optional; without it, ``--log-opt max-size`` is refused at
    create).  firstresult.  Returns ``True``.  Raises ``NotFound`` if the container has no
    running process.  Idempotent.

    .. versionadded:: 0.1 (issue #10)
    """


@hookspec(firstresult=True)
def exec_list() -> list[str] | None:
    """Ids of every container the driver holds runtime state for, running or not.

    Implemented by: exec driver (required).  firstresult.
    """


@hookspec(firstresult=True)
def exec_restore(container_id: str) -> ProcessState | None:
    """Re-attach to a container after a daemon restart.

    Implemented by: exec driver (required).  firstresult.  Returns its state:
    ``running`` if its process survived, ``exited`` (with the code) if it ended
    while no daemon was there, ``None`` if nothing is known.  Cleans up runtime
    leftovers (cgroups, locks) of processes that are gone.
    """


@hookspec(firstresult=True)
def exec_delete(container_id: str) -> bool | None:
    """Remove the runtime state of an exited container.

    Implemented by: exec driver (required).  firstresult.  Returns ``True``.
    Idempotent.  Raises ``Conflict`` if the process is still running.
    """


@hookspec(firstresult=True)
def exec_run(container_id: str, exec_id: str, spec: ProcessSpec) -> socket.socket | None:
    """Start a second process in a running container (``docker exec``).

    Implemented by: exec driver (optional).  firstresult.  Returns a connected
    socket carrying the process's streams exactly as :func:`exec_attach` does
    (stdcopy frames, or raw bytes with a tty; bytes written are stdin when
    ``spec.stdin``; the caller's half-close is stdin EOF), closed once the process
    has exited and its output is drained.  Exit codes as Docker's: 126 not
    executable, 127 not found.  Raises ``Conflict`` if the container is not
    running or is paused.
    """


@hookspec(firstresult=True)
def exec_run_wait(container_id: str, exec_id: str) -> int | None:
    """Block until an :func:`exec_run` process exits; return its exit code.

    Implemented by: exec driver (optional).  firstresult.  ``NotFound`` for an
    unknown ``exec_id``.
    """


@hookspec(firstresult=True)
def exec_run_resize(container_id: str, exec_id: str, height: int, width: int) -> bool | None:
    """Resize an :func:`exec_run` process's tty.  Implemented by: exec driver (optional).  firstresult."""


@hookspec(firstresult=True)
def exec_pause(container_id: str) -> bool | None:
    """Freeze every process of the container (freezer cgroup).

    Implemented by: exec driver (optional).  firstresult.  ``Conflict`` if not running.
    """


@hookspec(firstresult=True)
def exec_unpause(container_id: str) -> bool | None:
    """Thaw a paused container.  Implemented by: exec driver (optional).  firstresult."""


@hookspec(firstresult=True)
def exec_processes(container_id: str) -> list[int] | None:
    """Host PIDs of every process in the container (``docker top``).

    Implemented by: exec driver (optional).  firstresult.
    """


@hookspec(firstresult=True)
def exec_stats(container_id: str) -> dict | None:
    """Resource usage read from the container's cgroups, in the Engine API's
    ``/containers/{id}/stats`` shape (``memory_stats``, ``cpu_stats``,
    ``pids_stats``, ``blkio_stats``; ``networks`` is added by the core).

    Implemented by: exec driver (optional).  firstresult.
    """


@hookspec(firstresult=True)
def exec_update(container_id: str, resources: Resources) -> bool | None:
    """Change a running container's cgroup limits (``docker update``).

    Implemented by: exec driver (optional).  firstresult.
    """


@hookspec(firstresult=True)
def exec_runtimes() -> Runtimes | None:
    """The runtimes this driver can run a container with, and its default.

    Implemented by: exec driver (optional; without it the driver is its own only
    runtime).  firstresult.  ``RuntimeSpec.runtime`` names one of them (the core
    refuses any other with ``InvalidParameter``), or is empty for the default.

    .. versionadded:: 0.2
    """


@hookspec(firstresult=True)
def exec_status() -> list[tuple[str, str]] | None:
    """Status lines for ``info``.  Implemented by: exec driver.  firstresult."""


# ---------------------------------------------------------------------------
# networking  (group ``dockyard.network``)
# ---------------------------------------------------------------------------


@hookspec(firstresult=True)
def network_prepare(request: NetworkRequest) -> NetworkAttachment | None:
    """Give a container its network before its process starts.

    Implemented by: network driver (required).  firstresult.  Returns where the
    container's network namespace is and its settings for inspect.  Called at
    every start; must be idempotent for a container already prepared.
    ``request.mode`` may be ``default``, ``bridge``, ``none``, ``host``,
    ``container:<id>`` (with ``shared_netns``) or a user network's name.
    Raises ``InvalidParameter`` for an unsupported mode, ``NotFound`` for an
    unknown network, ``Conflict`` when a published host port is in use,
    ``System`` on netlink failures.
    """


@hookspec(firstresult=True)
def network_release(container_id: str) -> bool | None:
    """Release what :func:`network_prepare` made.  Returns ``True``.

    Implemented by: network driver (required).  firstresult.  Idempotent.
    """


@hookspec(firstresult=True)
def network_settings(container_id: str) -> dict | None:
    """Engine API ``NetworkSettings`` fields for a container, for inspect.

    Implemented by: network driver (required).  firstresult.
    """


@hookspec(firstresult=True)
def network_status() -> list[tuple[str, str]] | None:
    """Status lines for ``info``.  Implemented by: network driver.  firstresult."""


@hookspec(firstresult=True)
def network_remove(container_id: str) -> bool | None:
    """The container is being removed: free what it still holds (address, host ports).

    Implemented by: network driver (optional; without it, release is all there is).
    firstresult.  Called after :func:`network_release`, from ``rm``.  Idempotent.
    ``network_release`` stays the *stop* operation: it deletes the namespace and
    veths but keeps the address and host ports, so a restarted container gets them back.

    .. versionadded:: 0.2
    """


@hookspec(firstresult=True)
def network_cleanup() -> bool | None:
    """Daemon shutdown.  Drops the driver's process resources.  Rules that still-running
    containers use may be kept, since containers outlive the daemon.

    Implemented by: network driver (optional).  firstresult.  Idempotent.
    """


@hookspec(firstresult=True)
def network_create(name: str, options: dict) -> dict | None:
    """``POST /networks/create``.  ``options`` is the request body (IPAM, Options, Internal,
    Labels).  Returns the network's inspect dict.  Raises ``Conflict`` for a name in use or an
    overlapping pool, ``Forbidden`` for predefined names, ``InvalidParameter``.
    Implemented by: network driver (optional).  firstresult."""


@hookspec(firstresult=True)
def network_delete(name: str) -> bool | None:
    """Remove a user network.  ``Conflict`` if it has active endpoints, ``NotFound``.
    Implemented by: network driver (optional).  firstresult."""


@hookspec(firstresult=True)
def network_list() -> list[dict] | None:
    """Inspect dicts of every network the driver manages (``bridge`` included; ``host`` and
    ``none`` are added by the route).  Implemented by: network driver (optional).  firstresult."""


@hookspec(firstresult=True)
def network_inspect(name: str) -> dict | None:
    """One network by name, ID or unique ID prefix; ``NotFound``.
    Implemented by: network driver (optional).  firstresult."""


@hookspec(firstresult=True)
def network_connect(
    container_id: str, network: str, aliases: list[str], endpoint: EndpointRequest | None
) -> dict | None:
    """Attach a running container to one more network (next ``ethN``).  Returns the container's
    NetworkSettings.

    Called by ``POST /networks/{id}/connect`` for a running container, and at every start for
    each network the container is on besides the one of its network mode (the core keeps that
    list, so connections survive restarts).  ``endpoint`` carries the aliases again with fixed
    addresses, link-local addresses and a MAC address; a driver that cannot honour one of them
    raises ``InvalidParameter`` rather than ignoring it.  ``Conflict`` if the container is not
    running, is already connected or the address is taken; ``InvalidParameter`` for an address
    outside the network's subnet.
    Implemented by: network driver (optional).  firstresult.

    .. versionchanged:: 0.3 ``endpoint``
    """


@hookspec(firstresult=True)
def network_resolvers(container_id: str) -> list[str] | None:
    """Nameservers a resolver of the driver's answers for a running container on, considering every
    network it is on now: what its ``resolv.conf`` should list after a ``network connect`` ([] when
    none of its networks has one; the host's resolvers are then kept).

    Implemented by: network driver (optional).  firstresult.  Never raises for an unknown container
    (returns []).

    .. versionadded:: 0.3
    """


@hookspec(firstresult=True)
def network_disconnect(container_id: str, network: str) -> bool | None:
    """Detach a container from a network and free its address there.
    Implemented by: network driver (optional).  firstresult."""


# ---------------------------------------------------------------------------
# distribution  (group ``dockyard.distribution``)
# ---------------------------------------------------------------------------


@hookspec(firstresult=True)
def distribution_pull(reference: str, auth: dict, progress, layer_exists, work_dir: str, layer_ready) -> dict | None:
    """Fetch an image's manifest, config and the layers the caller lacks from a registry.

    Implemented by: distribution driver.  firstresult.  ``progress`` is a callable
    taking one JSON-message dict (``status``, ``id``, ``progressDetail``); it may be
    called from several threads.  ``layer_exists(parent_chain_id | None, diff_id)``
    returns the local layer's chain ID when that layer (on those parents) is present,
    else ``None``.  Layers are verified against their digest and diff ID; their
    uncompressed tars are written into ``work_dir``.  ``layer_ready(index, diff_ids,
    tar_path, progress_id)`` (may be None) is called, from any thread, as soon as the
    layer at ``index`` (of the image's ``diff_ids``, bottom first) is verified, so that
    the caller can apply it while later layers download; the caller then owns the file.
    Returns ``{"config": bytes, "digest": manifest digest, "repository": local repo,
    "tag": tag or None (pull by digest), "name": str, "layers": [(diff_id, tar path or
    None when present)], "layer_ids": [12-hex progress ids]}``.
    Raises ``NotFound`` (unknown repository, tag or platform), ``Unauthorized``,
    ``InvalidParameter`` (verification failed).

    .. versionchanged:: 0.1 ``layer_ready``
    """


@hookspec(firstresult=True)
def distribution_push(reference: str, image: dict, auth: dict, progress) -> dict | None:
    """Upload an image's layers, config and manifest; returns ``{"Digest", "Size", "Tag"}``.

    ``image`` is ``{"config": bytes (the stored config blob), "layers": [(diff_id,
    path of the uncompressed tar)], "work_dir": str}``, bottom layer first.

    Implemented by: distribution driver.  firstresult.  Raises
    ``Unauthorized``, ``Forbidden``, ``NotFound``.
    """


@hookspec(firstresult=True)
def distribution_login(server: str, username: str, password: str, email: str) -> dict | None:
    """Check credentials; returns ``{"Status": "Login Succeeded", "IdentityToken": ...}``.

    ``email`` (may be empty) is for registries that register an unknown name at
    login (the index API's ``POST /v1/users/``, as ``docker login`` did): the
    account is then created and logged in at once, and ``Status`` says so
    before ``Login Succeeded``.

    Implemented by: distribution driver.  firstresult.  Raises ``Unauthorized``.

    .. versionchanged:: 0.1 ``email``
    """


@hookspec(firstresult=True)
def distribution_search(term: str, limit: int, auth: dict) -> list[dict] | None:
    """Search an index; returns Engine API search results.

    Implemented by: distribution driver.  firstresult.
    """


# ---------------------------------------------------------------------------
# observers  (group ``dockyard.observers``; any plugin, drivers included)
#
# Plain hooks, called 1:N: every registered implementation sees every call
# (metrics, audit, notifications).  The core calls them through
# :class:`dockyard.observers.Observers`: from one worker thread, in order,
# after the fact, each implementation on its own, so a slow observer never
# stalls the daemon and one that raises (logged) never keeps the others from
# the event.  Return values are ignored.
# ---------------------------------------------------------------------------


@hookspec(historic=True)
def daemon_configured(config) -> None:
    """The daemon's settings are final (a :class:`dockyard.daemon.config.DaemonConfig`;
    ``config.observer_opts`` holds ``--observer-opt KEY=VALUE`` settings for observers).

    Called once at daemon start, before the API listens.  historic: an observer
    registered later is called with it at registration.
    """


@hookspec
def container_started(container_id: str, pid: int) -> None:
    """A container's main process started (``docker start``, a restart policy, daemon start).

    ``pid``: the process in the host's PID namespace.
    """


@hookspec
def container_died(container_id: str, exit_code: int) -> None:
    """A container's main process exited (or was found gone at daemon start).

    ``exit_code``: as ``docker wait`` reports it (128 + signal for a killed one).
    """


@hookspec
def image_pushed(reference: str, digest: str) -> None:
    """An image was pushed: ``reference`` is ``repository:tag``, ``digest`` the manifest's
    (``sha256:...``, as the registry names it).

    .. versionadded:: 0.1
    """
