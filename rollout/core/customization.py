"""How far each plant departs from the base: the values and files its overlays change."""

from __future__ import annotations

from dataclasses import dataclass

from rollout.config.codebase import Release
from rollout.config.project import Plant, Project
from rollout.config.yamlfile import format_path
from rollout.core.values import MergedValues, lookup


@dataclass(frozen=True)
class Customization:
    plant: str
    archetype: str
    changed_keys: tuple[tuple[str, str], ...]
    """(key path, layer that set it) for every value that differs from the base."""
    replaced_files: tuple[str, ...]
    added_files: tuple[str, ...]
    base_keys: int

    @property
    def departure(self) -> float:
        """Share of the base's values the plant changes (0.0 to 1.0)."""
        return len(self.changed_keys) / self.base_keys if self.base_keys else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "plant": self.plant,
            "archetype": self.archetype,
            "changed_keys": [{"key": k, "set_by": s} for k, s in self.changed_keys],
            "replaced_files": list(self.replaced_files),
            "added_files": list(self.added_files),
            "departure": round(self.departure, 4),
        }


def customization(
    project: Project, release: Release, plant: Plant, merged: MergedValues, base: MergedValues
) -> Customization:
    changed = []
    for path, value, source in merged.leaves():
        if source.layer == "base":
            continue
        try:
            unchanged = lookup(base.values, path) == value
        except (KeyError, IndexError, TypeError):
            unchanged = False
        if not unchanged:
            changed.append((format_path(path), source.layer))
    files = sorted({p for o in project.overlays_for(plant) for p in o.files})
    return Customization(
        plant=plant.name,
        archetype=plant.config.archetype,
        changed_keys=tuple(changed),
        replaced_files=tuple(p for p in files if p in release.files),
        added_files=tuple(p for p in files if p not in release.files),
        base_keys=len(base.sources),
    )
