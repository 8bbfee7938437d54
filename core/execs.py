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
from dataclasses import dataclass, field
from typing import Any

from dockyard import ids, rootfs
from dockyard.containers import ContainerService
from dockyard.errors import Conflict, DockyardError, InvalidParameter, NotFound
from dockyard.models.runtime import ProcessSpec

log = logging.getLogger(__name__)


@dataclass
class ExecInstance:
    id: str
    container_id: str
    config: dict[str, Any]
    running: bool = False
    started: bool = False
    exit_code: int | None = None
    pending_size: tuple[int, int] | None = None  # a resize that came while the process was starting
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def api(self) -> dict:
        return {
            "ID": self.id, "Running": self.running, "ExitCode": self.exit_code,
            "ProcessConfig": {"tty": bool(self.config.get("Tty")), "entrypoint": self.config["Cmd"][0],
                              "arguments": self.config["Cmd"][1:], "privileged": False,
                              "user": self.config.get("User") or ""},
            "OpenStdin": bool(self.config.get("AttachStdin")), "OpenStderr": bool(self.config.get("AttachStderr")),
            "OpenStdout": bool(self.config.get("AttachStdout")), "CanRemove": False,
            "ContainerID": self.container_id, "DetachKeys": "", "Pid": 0,
        }


class ExecService:
    def __init__(self, containers: ContainerService) -> None:
        self.containers = containers
        self.instances: dict[str, ExecInstance] = {}

    def create(self, ref: str, config: dict[str, Any]) -> str:
        self._prune()
        c = self.containers.get(ref)
        if not c.state.running:
            raise Conflict(f"Container {c.id} is not running")
        if c.state.paused:
            raise Conflict(f"Container {c.id} is paused, unpause the container before exec")
        cmd = config.get("Cmd")
        if isinstance(cmd, str):
            cmd = [cmd]
        if not cmd:
            raise InvalidParameter("No exec command specified")
        if config.get("Privileged") and not c.host_config.privileged:
            # an exec process shares the container's confinement (RuntimeSpec.confinement); lifting it for one
            # process is not something exec drivers offer, so say so rather than run it confined
            raise InvalidParameter("exec --privileged is not supported in a container that is not privileged")
        instance = ExecInstance(id=ids.new_id(), container_id=c.id, config={**config, "Cmd": list(cmd)})
        self.instances[instance.id] = instance
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
        root = self.containers.storage.path(c.id) or self.containers.storage.mount(c.id)
        config = instance.config
        user = config.get("User") or c.config.user
        uid, gid, groups, home = rootfs.resolve_user(root, user)
        env = list(c.config.env or [])
        for item in config.get("Env") or []:
            key = item.split("=", 1)[0]
            env = [e for e in env if e.split("=", 1)[0] != key] + [item]
        names = {e.split("=", 1)[0] for e in env}
        if "PATH" not in names:
            env.insert(0, f"PATH={rootfs.DEFAULT_PATH}")
        if "HOME" not in names:
            env.append(f"HOME={home or '/'}")
        cwd = config.get("WorkingDir") or c.config.working_dir or "/"
        return ProcessSpec(args=config["Cmd"], env=env, cwd=cwd, uid=uid, gid=gid, additional_gids=groups,
                           tty=bool(config.get("Tty")), stdin=bool(config.get("AttachStdin")))

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
        spec = await asyncio.to_thread(self._spec, instance)
        sock = await asyncio.to_thread(self.containers.exec.run, c.id, exec_id, spec)
        instance.running = True
        if instance.pending_size and instance.config.get("Tty"):
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
        if not instance.config.get("Tty"):
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
