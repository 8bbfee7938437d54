"""``python -m dockyard.daemon [flags]``: the same as ``dockyard daemon``."""

import typer

from dockyard.cli.daemon import daemon

typer.run(daemon)
