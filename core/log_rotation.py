"""Container log rotation (``--log-opt max-size=SIZE --log-opt max-file=N``), as Docker names the files.

``LOG`` is the file being written; ``LOG.1`` the one before it, up to ``LOG.<N-1>``, the oldest.  The
exec driver writes ``LOG`` (under conmon, which has no rotation that keeps files); the daemon rotates,
as the kubelet does for the CRI:

1. :func:`rotate` unlinks the oldest, renames each ``LOG.i`` to ``LOG.<i+1>`` and ``LOG`` to
   ``LOG.1`` (with N = 1 it unlinks ``LOG``);
2. the exec driver is asked to start a new ``LOG`` (``exec_reopen_log``).  Until then the writer
   goes on writing to the renamed file: nothing is lost, and every line stays in one file.

A reader holding a file open reads it to its end after it was renamed or unlinked, and notices the
rotation because ``LOG`` is another inode (:mod:`dockyard.logs`); it only misses what was deleted
while it was more than N - 1 rotations behind.

:class:`LogRotator` looks at every running container's ``LOG`` each :data:`CHECK` seconds, so a
file can pass ``max-size`` by what the container writes in that time, and no rotation happens
while no daemon runs.  (conmon's own ``--log-size-max`` is not used as a bound: it starts ``LOG``
over, losing it, and counts bytes across reopened files.)
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from dockyard.errors import DockyardError

if TYPE_CHECKING:
    from dockyard.containers import ContainerService

log = logging.getLogger(__name__)

#: seconds between two looks at the logs' sizes
CHECK = 0.5


def rotated_path(path: Path | str, index: int) -> str:
    """``LOG`` for index 0, else ``LOG.<index>``."""
    return str(path) if index == 0 else f"{path}.{index}"


def rotate(path: Path, max_files: int) -> bool:
    """Rename the log's files one step older (see the module docstring); whether ``LOG`` was there."""
    last = max_files - 1
    try:
        if last == 0:
            os.unlink(path)
            return True
        try:
            os.unlink(rotated_path(path, last))
        except FileNotFoundError:
            pass
        for index in range(last - 1, 0, -1):
            try:
                os.rename(rotated_path(path, index), rotated_path(path, index + 1))
            except FileNotFoundError:
                pass
        os.rename(path, rotated_path(path, 1))
        return True
    except FileNotFoundError:  # LOG itself is gone (the container was removed meanwhile)
        return False


class LogRotator:
    """Rotates the logs of running containers that have a ``max-size`` (a daemon background task)."""

    def __init__(self, containers: "ContainerService", check: float = CHECK) -> None:
        self.containers = containers
        self.check = check

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.check)
            due = [
                (c.id, self.containers.log_path(c), settings.max_size, settings.max_files)
                for c in list(self.containers.containers.values())
                if c.state.running and (settings := self.containers.log_settings(c)).max_size
            ]
            if due:
                await asyncio.to_thread(self.rotate_due, due)

    def rotate_due(self, due: list[tuple[str, Path, int, int]]) -> None:
        """In a worker: rotate each log past its size and have its writer start a new one."""
        for container_id, path, max_size, max_files in due:
            try:
                if os.stat(path).st_size < max_size or not rotate(path, max_files):
                    continue
            except OSError:
                continue  # not written yet, or removed meanwhile
            try:
                self.containers.exec.reopen_log(container_id)
            except DockyardError as exc:  # the process ended meanwhile: nothing writes any more
                log.debug("reopening the log of %s: %s", container_id[:12], exc)
                try:  # LOG stays where readers and inspect's LogPath look for it
                    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
                except FileExistsError:
                    pass
