"""Moving a data root's layers from one storage driver to another
(``dockyard daemon --storage-driver NEW --storage-migrate``).

Image layers are re-applied from the exact layer tars the store keeps by diff ID;
a container's read-write layer is carried over as its diff from the old driver.
Safe to run again after a crash: layers already complete in the new driver are
skipped, and the data root keeps naming the old driver until everything moved.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from dockyard.drivers import StorageDriver, load_drivers
from dockyard.errors import Conflict
from dockyard.store import Store

log = logging.getLogger(__name__)


def _layers_parents_first(store: Store) -> list[tuple[str, str | None, str]]:
    rows = {r["chain_id"]: (r["parent"], r["diff_id"]) for r in store.layer_rows()}
    ordered: list[tuple[str, str | None, str]] = []
    seen: set[str] = set()

    def visit(layer: str) -> None:
        if layer in seen:
            return
        parent, diff_id = rows[layer]
        if parent:
            visit(parent)
        seen.add(layer)
        ordered.append((layer, parent, diff_id))

    for layer in sorted(rows):
        visit(layer)
    return ordered


def migrate(data_root: Path, store: Store, old: str, new: str, options: dict[str, dict]) -> None:
    running = [r["id"] for r in store.container_rows() if json.loads(r["state"]).get("State", {}).get("Running")]
    if running:
        raise Conflict(
            f"cannot migrate storage while {len(running)} container(s) may still run "
            f"(first: {running[0][:12]}); stop them with the old driver first"
        )
    source = StorageDriver(load_drivers(data_root, {"storage": old}, options).pm)
    target = StorageDriver(load_drivers(data_root, {"storage": new}, options).pm)
    layers = _layers_parents_first(store)
    for layer, parent, diff_id in layers:
        if target.exists(layer):
            continue
        target.create_layer(layer, parent)
        with open(store.blob_dir / diff_id.removeprefix("sha256:"), "rb") as tar:
            target.apply_diff(layer, tar)
    containers = store.container_rows()
    for row in containers:
        if target.exists(row["id"]) or not source.exists(row["id"]):
            continue
        target.create_layer(row["id"], row["base_layer"])
        diff = source.diff(row["id"])
        try:
            target.apply_diff(row["id"], diff)
        finally:
            diff.close()
    store.set_setting("storage_driver", new)  # from here on the new driver owns the data root
    for row in containers:
        if source.exists(row["id"]):
            source.remove_layer(row["id"])
    for layer, _, _ in reversed(layers):
        if source.exists(layer):
            source.remove_layer(layer)
    source.cleanup()
    target.cleanup()  # the engine opens the new driver afresh
    log.info(
        "migrated %d image layer(s) and %d container layer(s) from %s to %s", len(layers), len(containers), old, new
    )
