"""What the commands do, as functions that return data. Nothing here prints or exits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .bundle import Bundle
from .bundle_writer import write_bundle
from .codebase import Release
from .customization import Customization, customization
from .diff import FileChange, diff_bundles
from .errors import ConfigError, Problem
from .plan import Plan, make_plan
from .project import Project, find_project, load_project
from .render import Renderer
from .values import Source, merge_values
from .yamlfile import Path_


def open_project(start: Path) -> Project:
    """Find (from ``start`` upward) and load the project."""
    return load_project(find_project(start))


@dataclass(frozen=True)
class Validation:
    project: Project
    release: Release
    plan: Plan
    customizations: list[Customization]
    bundles: int
    shared: int
    """Bundles whose rendering another plant's equal inputs saved."""


def validate(project: Project, ref: str | None) -> Validation:
    """Check everything a deploy of ``ref`` would use by rendering every plant in memory."""
    release = project.release(ref)
    plan = make_plan(project, release.id, release.commit)
    renderer = Renderer(project, release)
    base = merge_values(renderer.base_values, [])
    problems: list[Problem] = []
    customizations: list[Customization] = []
    count = 0
    for plant in project.plants.values():
        try:
            count += len(renderer.render_plant(plant))
            customizations.append(customization(project, release, plant, renderer.values(plant), base))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return Validation(project, release, plan, customizations, count, renderer.hits)


def plan(project: Project, ref: str | None) -> Plan:
    release = project.release(ref)
    return make_plan(project, release.id, release.commit)


@dataclass(frozen=True)
class Rendered:
    bundle: Bundle
    written: bool
    """False when the folder already held this exact bundle."""


def render(project: Project, ref: str | None, plants: list[str], out: Path | None) -> list[Rendered]:
    """Render bundles of the chosen plants (all when none chosen); write them when ``out`` is set."""
    release = project.release(ref)
    renderer = Renderer(project, release)
    chosen = [project.plant(n) for n in plants] if plants else list(project.plants.values())
    problems: list[Problem] = []
    bundles: list[Bundle] = []
    for plant in chosen:
        try:
            bundles.extend(renderer.render_plant(plant))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)  # nothing is written unless every plant renders
    return [Rendered(b, write_bundle(b, out) if out is not None else False) for b in bundles]


def explain(project: Project, ref: str | None, plant_name: str) -> list[tuple[Path_, object, Source]]:
    """Every value the plant's templates see, with the layer and line that set it."""
    plant = project.plant(plant_name)
    renderer = Renderer(project, project.release(ref))
    renderer.check_plant(plant)
    return renderer.values(plant).leaves()


@dataclass(frozen=True)
class Diff:
    plant: str
    release: Release
    against: Release | None
    changes: list[FileChange]


def diff(project: Project, plant_name: str, ref: str | None, against: str | None) -> Diff:
    """What changes on a plant between ``against`` and ``ref``.

    With no ``against``, nothing is known to be deployed yet, so every file is new.
    """
    plant = project.plant(plant_name)
    release = project.release(ref)
    new = Renderer(project, release).render_plant(plant)
    old_release = project.release(against, "--against") if against else None
    old = Renderer(project, old_release).render_plant(plant) if old_release else []
    old_label = old_release.id if old_release else "nothing"
    return Diff(plant.name, release, old_release, diff_bundles(old, new, old_label, release.id))
