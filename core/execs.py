"""``docker exec``: second processes in running containers.

An exec instance is created (``POST /containers/{id}/exec``), started once
(``POST /exec/{id}/start``, hijacked unless detached) and inspected for its exit
code.  Instances live in memory only, as in Docker; they are dropped with their
container.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from dockyard import ids, rootfs
from dockyard.detachkeys import detach_keys
from dockyard.containers import Container, ContainerService
from dockyard.errors import Conflict, DockyardError, InvalidParameter, NotFound
from dockyard.models.exec import ExecCreateRequest
from dockyard.models.runtime import ProcessSpec

log = logging.getLogger(__name__)

#: the most output of a healthcheck probe kept (moby's maxOutputLen)
PROBE_OUTPUT = 4096


@dataclass
class ExecInstance:
    id: str
    container_id: str
    config: ExecCreateRequest
    running: bool = False
    started: bool = False
    exit_code: int | None = None
    pending_size: tuple[int, int] | None = None  # a resize that came while the process was starting
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def api(self) -> dict:
        cmd = self.config.cmd or [""]
        return {
            "ID": self.id,
            "Running": self.running,
            "ExitCode": self.exit_code,
            "ProcessConfig": {
                "tty": self.config.tty,
                "entrypoint": cmd[0],
                "arguments": cmd[1:],
                "privileged": False,
                "user": self.config.user,
            },
            "OpenStdin": self.config.attach_stdin,
            "OpenStderr": self.config.attach_stderr,
            "OpenStdout": self.config.attach_stdout,
            "CanRemove": False,
            "ContainerID": self.container_id,
            "DetachKeys": self.config.detach_keys,
            "Pid": 0,
        }


class ExecService:
    def __init__(self, containers: ContainerService) -> None:
        self.containers = containers
        self.instances: dict[str, ExecInstance] = {}

    def create(self, ref: str, config: ExecCreateRequest) -> str:
        self._prune()
        c = self.containers.get(ref)
        if not c.state.running:
            raise Conflict(f"Container {c.id} is not running")
        if c.state.paused:
            raise Conflict(f"Container {c.id} is paused, unpause the container before exec")
        if not config.cmd:
            raise InvalidParameter("No exec command specified")
        if config.detach_keys:
            detach_keys(config.detach_keys)  # "Invalid detach keys" at create, as in Docker
        if config.privileged and not c.host_config.privileged:
            # an exec process shares the container's confinement (RuntimeSpec.confinement); lifting it for one
            # process is not something exec drivers offer, so say so rather than run it confined
            raise InvalidParameter("exec --privileged is not supported in a container that is not privileged")
        instance = ExecInstance(id=ids.new_id(), container_id=c.id, config=config)
        self.instances[instance.id] = instance
        self.containers.event(c, f"exec_create: {' '.join(config.cmd)}", execID=instance.id)
        return instance.id

    def get(self, exec_id: str) -> ExecInstance:
        instance = self.instances.get(exec_id)
        if instance is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        return instance

    def check_startable(self, exec_id: str) -> ExecInstance:
        """The checks ``start`` makes, without starting: for errors before a hijack."""
        instance = self.get(exec_id)
        if instance.started:
            raise Conflict(f"Error: Exec command {exec_id} has already run")
        c = self.containers.get(instance.container_id)
        if not c.state.running:
            raise Conflict(f"Container {c.id} is not running")
        if c.state.paused:
            raise Conflict(f"Container {c.id} is paused, unpause the container before exec")
        return instance

    def _spec(self, instance: ExecInstance) -> ProcessSpec:
        c = self.containers.get(instance.container_id)
        config = instance.config
        return self.process_spec(
            c,
            config.cmd or [],
            config.user,
            config.working_dir,
            config.env or [],
            tty=config.tty,
            stdin=config.attach_stdin,
        )

    def process_spec(
        self,
        c: Container,
        argv: list[str],
        user: str = "",
        cwd: str = "",
        env: Sequence[str] = (),
        tty: bool = False,
        stdin: bool = False,
    ) -> ProcessSpec:
        """A second process in ``c``: the container's user, environment and working directory unless
        given, with its ``--group-add`` groups."""
        root = self.containers.storage.path(c.id) or self.containers.storage.mount(c.id)
        uid, gid, groups, home = rootfs.resolve_user(root, user or c.config.user)
        groups = sorted(set(groups) | set(self.containers.extra_groups(c, root)))
        merged = list(c.config.env or []) + self.containers.link_env(c)
        for item in env:
            key = item.split("=", 1)[0]
            merged = [e for e in merged if e.split("=", 1)[0] != key] + [item]
        names = {e.split("=", 1)[0] for e in merged}
        if "PATH" not in names:
            merged.insert(0, f"PATH={rootfs.DEFAULT_PATH}")
        if "HOME" not in names:
            merged.append(f"HOME={home or '/'}")
        return ProcessSpec(
            args=argv,
            env=merged,
            cwd=cwd or c.config.working_dir or "/",
            uid=uid,
            gid=gid,
            additional_gids=groups,
            tty=tty,
            stdin=stdin,
        )

    def probe(self, c: Container, argv: list[str]) -> tuple[int, str]:
        """Run a healthcheck probe in ``c`` (blocking): its exit code and its output (stdout and
        stderr as they came, at most 4096 bytes, as Docker keeps)."""
        exec_id = ids.new_id()
        spec = self.process_spec(c, argv, c.config.user, c.config.working_dir)
        sock = self.containers.exec.run(c.id, exec_id, spec)
        output = bytearray()
        truncated = False
        with sock:
            stream = sock.makefile("rb")
            while header := stream.read(8):
                if len(header) < 8:
                    break
                payload = stream.read(int.from_bytes(header[4:8], "big"))
                keep = max(0, PROBE_OUTPUT - len(output))
                output += payload[:keep]
                truncated = truncated or len(payload) > keep
        code = self.containers.exec.run_wait(c.id, exec_id)
        text = output.decode(errors="replace") + ("..." if truncated else "")
        return code, text

    async def start(self, exec_id: str) -> socket.socket:
        """Start the process; returns its stream socket.  The exit is recorded by
        a watcher thread, so a detached start needs nothing more."""
        instance = self.get(exec_id)
        if instance.started:
            raise Conflict(f"Error: Exec command {exec_id} has already run")
        c = self.containers.get(instance.container_id)
        if not c.state.running:
            raise Conflict(f"Container {c.id} is not running")
        instance.started = True
        self.containers.event(c, f"exec_start: {' '.join(instance.config.cmd or [])}", execID=exec_id)
        spec = await asyncio.to_thread(self._spec, instance)
        sock = await asyncio.to_thread(self.containers.exec.run, c.id, exec_id, spec)
        instance.running = True
        if instance.pending_size and instance.config.tty:
            try:
                await asyncio.to_thread(self.containers.exec.run_resize, c.id, exec_id, *instance.pending_size)
            except DockyardError:
                pass
        loop = asyncio.get_running_loop()

        def wait() -> None:
            try:
                code = self.containers.exec.run_wait(c.id, exec_id)
            except DockyardError as exc:
                log.warning("exec %s: %s", ids.short(exec_id), exc)
                code = 126
            loop.call_soon_threadsafe(self._finished, instance, code)

        self.containers.start_thread(threading.Thread(target=wait, name=f"exec-{exec_id[:12]}", daemon=True))
        return sock

    def _finished(self, instance: ExecInstance, code: int) -> None:
        instance.running = False
        instance.exit_code = code
        instance.done.set()
        container = self.containers.containers.get(instance.container_id)
        if container is not None:
            self.containers.event(container, "exec_die", execID=instance.id, exitCode=str(code))

    async def resize(self, exec_id: str, height: int, width: int) -> None:
        instance = self.get(exec_id)
        if not instance.config.tty:
            return
        if instance.started and not instance.running and instance.exit_code is None:
            instance.pending_size = (height, width)  # starting: start() applies it
            return
        if instance.running:
            await asyncio.to_thread(self.containers.exec.run_resize, instance.container_id, exec_id, height, width)

    def _prune(self) -> None:
        """Drop instances of containers that are gone (Docker forgets them with the container)."""
        for exec_id in [e for e, i in self.instances.items() if i.container_id not in self.containers.containers]:
            del self.instances[exec_id]
