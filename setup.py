"""Package mapping only; all metadata lives in pyproject.toml.

The source tree keeps the design's folders (core/, cli/, plugins/, registry/) while the
installed distribution is one import namespace: ``dockyard`` (core),
``dockyard.cli``, ``dockyard.plugins.*`` and ``dockyard.registry`` (the registry
server).  setuptools cannot express a prefix-changing mapping for discovered subpackages declaratively, hence this file.
"""

from setuptools import find_packages, setup

SOURCE_ROOTS = {
    "dockyard": "core",
    "dockyard.cli": "cli",
    "dockyard.plugins": "plugins",
    "dockyard.registry": "registry",
}

packages: list[str] = []
for package, folder in SOURCE_ROOTS.items():
    packages.append(package)
    packages += [f"{package}.{sub}" for sub in find_packages(folder)]

setup(
    packages=packages,
    package_dir=SOURCE_ROOTS,
    package_data={
        "": ["*.sh", "*.json", "*.c", "static/*.html", "static/*.js", "static/*.css"],
        "dockyard": ["py.typed"],
    },
)
