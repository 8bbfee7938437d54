"""The microkernel's import rules, checked on the source (every import, lazy ones included).

* the core never imports a plugin, the CLI or the registry server;
* the CLI and the registry server never import a plugin;
* a plugin imports the core's shared code only: no other plugin, no daemon, CLI or registry server.

Programs (``__main__`` modules) are exempt from the first rule: ``python -m dockyard.daemon``
is ``dockyard daemon``, whose flags the CLI owns.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: source folder -> installed package (see setup.py)
PACKAGES = {"core": "dockyard", "cli": "dockyard.cli", "plugins": "dockyard.plugins", "registry": "dockyard.registry"}


def _modules() -> dict[str, Path]:
    found = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


MODULES = _modules()


def _imports(module: str, path: Path) -> set[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # from pkg import submodule
    return {n for n in names if n == "dockyard" or n.startswith("dockyard.")}


def _kind(module: str) -> str:
    for prefix, kind in (("dockyard.cli", "cli"), ("dockyard.plugins", "plugin"), ("dockyard.registry", "registry")):
        if module == prefix or module.startswith(prefix + "."):
            return kind
    return "core"


def _plugin_of(module: str) -> str:
    return ".".join(module.split(".")[:3])


def _violations(module: str, imported: str) -> str | None:
    source, target = _kind(module), _kind(imported)
    if source == "core" and target != "core" and not (module.endswith(".__main__") and target == "cli"):
        return f"the core imports the {target}"
    if source in ("cli", "registry") and target == "plugin":
        return f"the {source} imports a plugin"
    if source == "plugin":
        if target == "plugin" and _plugin_of(imported) != _plugin_of(module) and imported != "dockyard.plugins":
            return "a plugin imports another plugin"
        if target in ("cli", "registry") or imported.startswith(("dockyard.daemon", "dockyard.engine")):
            return "a plugin imports the daemon, the CLI or the registry server"
    return None


def test_the_sources_were_found():
    kinds = {_kind(m) for m in MODULES}
    assert kinds == {"core", "cli", "plugin", "registry"}
    assert "dockyard.plugins.registry_http.client" in MODULES and "dockyard.drivers" in MODULES


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_respect_the_layers(module):
    bad = {
        imported: why
        for imported in _imports(module, MODULES[module])
        if (why := _violations(module, imported)) is not None
    }
    assert not bad, f"{module}: {bad}"


def test_the_checker_catches_violations():
    assert _violations("dockyard.containers", "dockyard.plugins.exec_lxc.driver")
    assert _violations("dockyard.cli.registry", "dockyard.plugins.registry_http.client")
    assert _violations("dockyard.plugins.net_bridge.driver", "dockyard.plugins.exec_lxc.cgroups")
    assert _violations("dockyard.plugins.net_bridge.driver", "dockyard.engine")
    assert _violations("dockyard.plugins.net_bridge.driver", "dockyard.netns") is None
    assert _violations("dockyard.cli.registry", "dockyard.registry.auth") is None


def test_one_hookimpl_spelling():
    """Drivers, observers and the core's fallbacks all write ``from dockyard import hookimpl`` / ``@hookimpl``."""
    sources = [*ROOT.glob("plugins/**/*.py"), *ROOT.glob("examples/*/*/*.py"), ROOT / "core" / "storage_fallbacks.py"]
    other = [
        str(p.relative_to(ROOT))
        for p in sources
        if "/build/" not in str(p)
        and (
            "hookspecs import hookimpl" in (text := p.read_text())
            or "@dockyard.hookimpl" in text
            or "@hookspecs.hookimpl" in text
        )
    ]
    assert not other, other
