"""``dockyard.build``: the classic Dockerfile builder behind ``POST /build``.

* :mod:`~dockyard.build.parser` - the Dockerfile format (no substitution);
* :mod:`~dockyard.build.shell` - word processing and ``$VAR`` substitution;
* :mod:`~dockyard.build.dockerignore` - ``.dockerignore`` patterns (also used by the CLI);
* :mod:`~dockyard.build.context` - the context directory (tar body, git, URL);
* :mod:`~dockyard.build.copier` - COPY/ADD sources, hashes and writes;
* :mod:`~dockyard.build.cache` - the step cache;
* :mod:`~dockyard.build.builder` - running the steps.

Nothing is imported eagerly, so the CLI can use the .dockerignore matcher cheaply.
"""

__all__ = ["Dockerfile", "DockerfileError", "Instruction", "Stage", "parse"]


def __getattr__(name: str):
    if name in __all__:
        from dockyard.build import parser

        return getattr(parser, name)
    raise AttributeError(name)
