"""Turning the strategy into a plan of waves. Pure: reads the loaded project, nothing else."""

from __future__ import annotations

import difflib
import fnmatch
import functools
import re
from dataclasses import dataclass
from typing import Any

from rollout.config.models import Selector, WaveConfig
from rollout.config.models.common import percent_of
from rollout.config.models.strategy import FailureResponse, WindowPolicy
from rollout.config.project import PROJECT_FILE, Plant, Project
from rollout.errors import PlanError, Problem

_RESPONSES = {
    "continue": "roll back each failed plant and go on",
    "halt": "roll back the failed plant and halt the rollout",
    "rollback_all": "roll back every plant this rollout updated",
}


@dataclass(frozen=True)
class PlannedPlant:
    name: str
    archetype: str
    timezone: str
    windows: str
    tags: tuple[str, ...]
    hosts: int


@dataclass(frozen=True)
class WavePlan:
    index: int
    name: str
    plants: tuple[PlannedPlant, ...]
    parallelism: int
    max_failures: int
    """Failed plants the wave tolerates; one more triggers ``on_failure``."""
    threshold: str
    """The threshold as written (``2`` or ``20%``)."""
    on_failure: FailureResponse
    bake_s: float
    approval: bool
    outside_window: WindowPolicy
    max_starts_per_minute: int | None = None
    abort_failed_pct: float | None = None
    """Stop once more than this share (%) of the finished plants failed ..."""
    abort_min_finished: int = 0
    """... counted once at least this many finished."""

    def describe_failure(self) -> str:
        return f"after {self.max_failures + 1} failed: {_RESPONSES[self.on_failure]}"


@dataclass(frozen=True)
class Plan:
    release: str
    commit: str
    layers: tuple[str, ...]
    waves: tuple[WavePlan, ...]
    max_window_wait_s: float

    @property
    def plant_count(self) -> int:
        return sum(len(w.plants) for w in self.waves)

    def records(self) -> list[dict[str, Any]]:
        """One JSON-ready record per wave and per plant, in execution order."""
        out: list[dict[str, Any]] = [
            {
                "type": "plan",
                "release": self.release,
                "commit": self.commit,
                "layers": list(self.layers),
                "waves": len(self.waves),
                "plants": self.plant_count,
            }
        ]
        for wave in self.waves:
            out.append(
                {
                    "type": "wave",
                    "index": wave.index,
                    "name": wave.name,
                    "plants": [p.name for p in wave.plants],
                    "parallelism": wave.parallelism,
                    "max_failures": wave.max_failures,
                    "threshold": wave.threshold,
                    "on_failure": wave.on_failure,
                    "bake_s": wave.bake_s,
                    "approval": wave.approval,
                    "outside_window": wave.outside_window,
                    "max_starts_per_minute": wave.max_starts_per_minute,
                    "abort_when": None
                    if wave.abort_failed_pct is None
                    else {"failed_above": f"{wave.abort_failed_pct:g}%", "min_finished": wave.abort_min_finished},
                }
            )
            for order, plant in enumerate(wave.plants):
                out.append(
                    {
                        "type": "plant",
                        "wave": wave.name,
                        "order": order,
                        "plant": plant.name,
                        "archetype": plant.archetype,
                        "timezone": plant.timezone,
                        "windows": plant.windows,
                        "tags": list(plant.tags),
                        "hosts": plant.hosts,
                        "layers": list(self.layers),
                    }
                )
        return out


def make_plan(project: Project, release: str, commit: str) -> Plan:
    """The waves a deploy of ``release`` takes; a plant in no wave or in two is an error."""
    strategy = project.config.strategy
    selected, problems = _select(project)
    assigned: dict[str, str] = {}
    for wave, names in zip(strategy.waves, selected, strict=True):
        for name in names:
            if name in assigned:
                problems.append(
                    _wave_problem(
                        project,
                        wave,
                        f"plant {name!r} is already in wave {assigned[name]!r}",
                        "each plant in exactly one wave",
                    )
                )
            assigned.setdefault(name, wave.name)
    remaining = [n for n in project.plants if n not in assigned]
    for i, wave in enumerate(strategy.waves):
        if wave.select.remaining:
            selected[i] = remaining
            remaining = []
    if remaining:
        problems.append(
            Problem(
                PROJECT_FILE,
                "strategy.waves",
                project.doc.line_of(("strategy", "waves")),
                expected="every plant in one wave (or a wave with 'remaining: true')",
                message=f"no wave takes plant(s) {', '.join(remaining)}",
            )
        )
    for i, wave in enumerate(strategy.waves):
        if not selected[i] and not wave.select.remaining:
            problems.append(_wave_problem(project, wave, "selects no plant", "at least one plant"))
    if problems:
        raise PlanError(problems)
    waves = tuple(_wave(project, i, wave, selected[i]) for i, wave in enumerate(strategy.waves) if selected[i])
    layers = tuple(layer.name for layer in project.config.layers)
    return Plan(release, commit, layers, waves, strategy.max_window_wait)


def _select(project: Project) -> tuple[list[list[str]], list[Problem]]:
    problems: list[Problem] = []
    selected: list[list[str]] = []
    for wave in project.config.strategy.waves:
        if wave.select.remaining:
            selected.append([])
            continue
        names, unknown = _matching(project, wave.select)
        for pattern in unknown:
            close = difflib.get_close_matches(pattern, list(project.plants), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(
                _wave_problem(project, wave, f"no plant matches {pattern!r}{hint}", "names of existing plants")
            )
        selected.append(names)
    return selected, problems


def _matching(project: Project, select: Selector) -> tuple[list[str], list[str]]:
    """Plants the selector takes: listed names first, in the order listed, then by name."""
    patterns = select.plants + select.exclude
    unknown = [p for p in patterns if not any(fnmatch.fnmatchcase(n, p) for n in project.plants)]
    chosen = [p for p in project.plants.values() if _selects(select, p)]
    explicit = [p for p in select.plants if p in project.plants and _selects(select, project.plants[p])]
    rest = sorted(p.name for p in chosen if p.name not in explicit)
    return list(dict.fromkeys(explicit)) + rest, unknown


def _selects(select: Selector, plant: Plant) -> bool:
    if select.exclude and _any_of(tuple(select.exclude)).match(plant.name):
        return False
    if select.plants and not _any_of(tuple(select.plants)).match(plant.name):
        return False
    if select.archetypes and plant.config.archetype not in select.archetypes:
        return False
    return not select.tags or bool(set(select.tags) & set(plant.config.tags))


@functools.lru_cache(maxsize=256)
def _any_of(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """One regular expression matching what fnmatchcase matches with any of ``patterns``: once per
    selector, not once per pattern and plant."""
    return re.compile("|".join(fnmatch.translate(p) for p in patterns))


def _wave_problem(project: Project, wave: WaveConfig, message: str, expected: str) -> Problem:
    index = project.config.strategy.waves.index(wave)
    path = ("strategy", "waves", index, "select")
    return Problem(
        PROJECT_FILE,
        f"strategy.waves[{index}].select",
        project.doc.line_of(path),
        expected=expected,
        message=f"wave {wave.name!r}: {message}",
    )


def _wave(project: Project, index: int, wave: WaveConfig, names: list[str]) -> WavePlan:
    strategy = project.config.strategy
    threshold = wave.max_failures if wave.max_failures is not None else strategy.max_failures
    plants = tuple(_planned(project.plants[n], project) for n in names)
    criteria = wave.abort_when or strategy.abort_when
    return WavePlan(
        index=index,
        name=wave.name,
        plants=plants,
        parallelism=min(wave.parallelism or strategy.parallelism, len(plants)),
        max_failures=percent_of(threshold, len(plants)),
        threshold=str(threshold),
        on_failure=wave.on_failure or strategy.on_failure,
        bake_s=wave.bake if wave.bake is not None else strategy.bake,
        approval=wave.approval,
        outside_window=wave.outside_window or strategy.outside_window,
        max_starts_per_minute=wave.max_starts_per_minute or strategy.max_starts_per_minute,
        abort_failed_pct=float(criteria.failed_above) if criteria else None,
        abort_min_finished=criteria.min_finished if criteria else 0,
    )


def _planned(plant: Plant, project: Project) -> PlannedPlant:
    groups = {layer.inventory_group for layer in project.config.layers}
    hosts = {h for g in groups for h in plant.inventory.groups.get(g, ())}
    return PlannedPlant(
        plant.name,
        plant.config.archetype,
        plant.config.timezone,
        plant.config.windows_text(),
        tuple(plant.config.tags),
        len(hosts),
    )
