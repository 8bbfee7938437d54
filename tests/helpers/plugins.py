"""Install a plugin for a test without pip: a ``.dist-info`` directory on a path entry.

``importlib.metadata`` (hence stevedore and dockyard's observer loading) finds entry
points of every distribution on ``sys.path``; putting a directory with a small
``.dist-info`` on ``sys.path`` (this process) or ``PYTHONPATH`` (a daemon started by
the test) installs the plugin through the real discovery path.
"""

from __future__ import annotations

from pathlib import Path


def fake_distribution(directory: Path, name: str, entry_points: dict[str, dict[str, str]]) -> Path:
    """Write ``<name>-0.dist-info`` into ``directory`` declaring ``entry_points``
    (``{group: {entry name: "module[:attribute]"}}``); returns ``directory``."""
    info = directory / f"{name.replace('-', '_')}-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0\n")
    lines = []
    for group, entries in entry_points.items():
        lines.append(f"[{group}]")
        lines += [f"{entry} = {value}" for entry, value in entries.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return directory
