"""Loading a project's plants: each plant file with its inventory, checked against the project.

Thousands of plants load on every core; a plant whose inputs are unchanged since a previous
load comes from the per-user cache (``plantcache``) instead of being parsed again.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rollout.config.inventory import Inventory, read_inventory
from rollout.config.inventory.checks import check_inventory
from rollout.config.inventory.source import read_bytes
from rollout.config.models import PlantConfig, ProjectConfig
from rollout.config.models.common import NAME_PATTERN
from rollout.config.models.validation import validate_doc
from rollout.config.plantcache import (
    Inputs,
    PlantCache,
    Seen,
    TreeFingerprints,
    default_dir,
    groups_digest,
    inventory_as_json,
    inventory_from_json,
    recheck,
    survives_json,
)
from rollout.config.yamlfile import parse_yaml_bytes, read_yaml_bytes
from rollout.core.fanout import Failed, fan_out
from rollout.errors import ConfigError, Problem

PLANTS_DIR = "plants"
INVENTORIES_DIR = "inventories"
MAX_PLANTS = 100_000


@dataclass(frozen=True)
class Plant:
    name: str
    config: PlantConfig
    inventory: Inventory
    file: str


def plant_files(root: Path) -> list[Path]:
    folder = root / PLANTS_DIR
    found = [p for p in folder.glob("*") if p.suffix in (".yaml", ".yml")] if folder.is_dir() else []
    return sorted(found, key=lambda p: p.name)  # one folder: by name, as paths would sort, without their cost


def load_plants(
    root: Path, files: list[Path], config: ProjectConfig | None, problems: list[Problem]
) -> dict[str, Plant]:
    """The plants of ``files`` that load; the problems of the others go to ``problems``."""
    if not files:
        problems.append(
            Problem(f"{PLANTS_DIR}/", message="no plants defined", expected=f"one {PLANTS_DIR}/<plant>.yaml per plant")
        )
        return {}
    if len(files) > MAX_PLANTS:
        problems.append(Problem(f"{PLANTS_DIR}/", message=f"more than {MAX_PLANTS} plants"))
        return {}
    load = _Load(root, config, PlantCache.open(root, default_dir()))
    hits = {path.name: hit for path in files if (hit := load.cached(path)) is not None}
    misses = [path for path in files if path.name not in hits]
    # Each plant's files are independent of the others': thousands of them load on every core.
    loaded = iter(fan_out(misses, load.read))
    plants: dict[str, Plant] = {}
    for path in files:
        plant = hits.get(path.name) or next(loaded)
        if isinstance(plant, Failed):
            problems.extend(plant.problems)
            continue
        if isinstance(plant, _Loaded):
            load.remember(path.name, plant)
            plant = plant.plant
        if plant.name in plants:
            problems.append(Problem(plant.file, message=f"plant {plant.name!r} is defined twice (.yaml and .yml)"))
        plants[plant.name] = plant
    load.cache.keep_only(path.name for path in files)
    load.cache.save()
    return plants


@dataclass(frozen=True)
class _Loaded:
    """A plant read from its files, with what the cache keeps of it (None: it is not kept)."""

    plant: Plant
    inputs: Inputs | None = None
    config: Any = None
    inventory: dict[str, Any] | None = None


class _Load:
    """One load of a project's plants: what is shared by all of them, read once."""

    def __init__(self, root: Path, config: ProjectConfig | None, cache: PlantCache) -> None:
        self.root, self.config, self.cache = root, config, cache
        self.root_text = str(root)
        self.started_ns = time.time_ns()  # before any file is read: a later change is never missed
        self.groups = groups_digest(None if config is None else [layer.inventory_group for layer in config.layers])
        self.trees = TreeFingerprints()
        self.after = TreeFingerprints()
        """The trees again once every plant missing from the cache is read."""
        self.inventories = _listing(root / INVENTORIES_DIR)

    def cached(self, path: Path) -> Plant | None:
        """The plant as the cache holds it, if every input of its load is still what it was."""
        entry = self.cache.entry(path.name)
        if entry is None:
            return None
        try:
            inputs = Inputs.from_json(entry["inputs"])
            fresh = self._unchanged(path, inputs)
            if fresh is None:
                return None
            plant = Plant(
                path.stem,
                PlantConfig.model_validate(entry["config"]),
                inventory_from_json(entry["inventory"]),
                f"{PLANTS_DIR}/{path.name}",
            )
        except (OSError, ConfigError, AttributeError, KeyError, TypeError, ValueError):  # changed, or of no use
            return None
        if fresh != inputs:  # the same content, newly old enough to be known by its status
            self.cache.put(path.name, fresh, entry["config"], entry["inventory"])
        return plant

    def _unchanged(self, path: Path, inputs: Inputs) -> Inputs | None:
        """``inputs`` (its file records refreshed) if nothing the load read has changed, else None."""
        if inputs.groups != self.groups:
            return None
        if inputs.chosen_by_default and _default_inventory(self.root, path.stem, self.inventories) != inputs.inventory:
            return None
        plant = recheck(str(path), inputs.plant, lambda: read_yaml_bytes(path, path.name), self.started_ns)
        inventory = os.path.join(self.root_text, inputs.inventory)  # ten thousand of them: no pathlib
        inventory_file = recheck(
            inventory, inputs.inventory_file, lambda: read_bytes(Path(inventory), inputs.inventory), self.started_ns
        )
        if plant is None or inventory_file is None or inputs.vars_trees != self.trees.of(os.path.dirname(inventory)):
            return None
        if inventory_file is not inputs.inventory_file and inputs.executable != os.access(inventory, os.X_OK):
            return None  # a changed status may be a chmod (an unchanged one holds the mode)
        return Inputs(**{**inputs.__dict__, "plant": plant, "inventory_file": inventory_file})

    def read(self, path: Path) -> _Loaded:
        return _load_plant(self.root, path, self.config, self if self.cache.enabled else None)

    def remember(self, name: str, loaded: _Loaded) -> None:
        inputs = loaded.inputs
        if inputs is None or loaded.inventory is None:
            return
        # The variables trees were fingerprinted before the plant was read: kept only if unchanged since.
        if inputs.vars_trees != self.after.of(os.path.dirname(self.root / inputs.inventory)):
            return
        self.cache.put(name, inputs, loaded.config, loaded.inventory)


def _listing(folder: Path) -> frozenset[str]:
    try:
        return frozenset(os.listdir(folder))
    except OSError:
        return frozenset()


def _load_plant(root: Path, path: Path, config: ProjectConfig | None, load: _Load | None) -> _Loaded:
    """Read one plant; with the ``load`` it is part of, also what the cache would keep of it."""
    display = f"{PLANTS_DIR}/{path.name}"
    name = path.stem
    if re.match(NAME_PATTERN, name) is None:
        raise ConfigError.one(
            display,
            f"invalid plant name {name!r} (from the file name)",
            expected="lower-case letters, digits, '-' and '_'",
        )
    plant_info = _stat(path) if load is not None else None  # before the read: a change after it shows
    raw = read_yaml_bytes(path, display)
    doc = parse_yaml_bytes(raw, display)
    plant_config = validate_doc(PlantConfig, doc)
    inventory_rel = plant_config.inventory or _default_inventory(root, name)
    if plant_config.inventory is not None and not (root / inventory_rel).is_file():  # the setting is at fault
        raise ConfigError(
            [doc.problem(("inventory",), f"{inventory_rel!r} is not a file", expected="the plant's inventory file")]
        )
    inventory_path = root / inventory_rel
    vars_trees = load.trees.of(os.path.dirname(inventory_path)) if load is not None else None  # before they are read
    inventory_info = _stat(inventory_path) if load is not None else None
    inventory_raw = read_bytes(inventory_path, inventory_rel)
    inventory = read_inventory(inventory_path, inventory_rel, inventory_raw)
    if config is not None:
        check_inventory(inventory, config, inventory_rel)
    plant = Plant(name, plant_config, inventory, display)
    if load is None or vars_trees is None or plant_info is None or inventory_info is None:
        return _Loaded(plant)
    kept = inventory_as_json(inventory)
    if not (survives_json(doc.data) and survives_json(kept)):
        return _Loaded(plant)
    inputs = Inputs(
        plant=Seen.of(raw, plant_info, load.started_ns),
        inventory=inventory_rel,
        chosen_by_default=plant_config.inventory is None,
        inventory_file=Seen.of(inventory_raw, inventory_info, load.started_ns),
        executable=os.access(inventory_path, os.X_OK),
        vars_trees=vars_trees,
        groups=load.groups,
    )
    return _Loaded(plant, inputs, doc.data, kept)


def _stat(path: Path) -> os.stat_result | None:
    """The file's status; None when it cannot be had (the read that follows says why)."""
    try:
        return os.stat(path)
    except OSError:
        return None


def _default_inventory(root: Path, name: str, listing: frozenset[str] | None = None) -> str:
    """``inventories/<plant>.yml``, else ``.yaml``; ``listing`` (the folder's names) spares most lookups."""
    for suffix in (".yml", ".yaml"):
        candidate = f"{INVENTORIES_DIR}/{name}{suffix}"
        # A name the listing holds is taken as it is: the cache's check of the file then finds it
        # gone or changed, and the plant is read again, choosing as the loop without a listing does.
        found = f"{name}{suffix}" in listing if listing is not None else (root / candidate).exists()
        if found:
            return candidate
    return f"{INVENTORIES_DIR}/{name}.yml"
