"""What the read-only commands compute: validate, plan, render, explain, diff. Nothing here prints or exits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from rollout.config.codebase import Release
from rollout.config.project import Plant, Project
from rollout.config.yamlfile import Path_
from rollout.core.bundle import Bundle, BundleFile
from rollout.core.customization import Customization, customization
from rollout.core.diff import FileChange, diff_bundles
from rollout.core.fanout import Failed, fan_out
from rollout.core.plan import Plan, make_plan
from rollout.core.render import Renderer
from rollout.core.values import Source, merge_values
from rollout.errors import ConfigError
from rollout.service.bundle_writer import existing_files, write_bundle
from rollout.service.planning import open_project as open_project  # where it was before
from rollout.service.planning import plan as plan
from rollout.service.state import state_url

T = TypeVar("T")


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
    """Check everything a deploy of ``ref`` would use by rendering every plant in memory; the
    state URL too (parsed, not opened: validate stays read-only and needs no database)."""
    state_url(project)
    release = project.release(ref)
    plan = make_plan(project, release.id, release.commit)
    renderer = Renderer(project, release)
    base = merge_values(renderer.base_values, [])

    def check(plant: Plant) -> tuple[list[str], Customization]:
        hashes = [b.inputs_hash for b in renderer.render_plant(plant)]
        return hashes, customization(project, release, plant, renderer.values(plant), base)

    checked = _collected(fan_out(list(project.plants.values()), check))
    hashes = [h for plant_hashes, _ in checked for h in plant_hashes]
    # Bundles with equal inputs share one rendering, whichever process rendered them.
    shared = len(hashes) - len(set(hashes))
    return Validation(project, release, plan, [c for _, c in checked], len(hashes), shared)


def _collected(results: list[T | Failed]) -> list[T]:
    """The results, or one ConfigError with the problems of every item that failed."""
    problems = [p for r in results if isinstance(r, Failed) for p in r.problems]
    if problems:
        raise ConfigError(problems)
    return [r for r in results if not isinstance(r, Failed)]


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
    rendered = _collected(fan_out(chosen, lambda plant: _render_plant(renderer, plant, out)))
    pairs = [pair for plant_pairs in rendered for pair in plant_pairs]
    if out is None:
        return [Rendered(b, False) for b, _ in pairs]
    # Only now that every plant rendered is anything written; a bundle read back from ``out`` is there already.
    todo = list({(b.plant, b.layer): b for b, reused in pairs if not reused}.values())
    flags = _collected(fan_out(todo, lambda b: write_bundle(b, out)))
    written = {(b.plant, b.layer): flag for b, flag in zip(todo, flags, strict=True)}
    return [Rendered(b, written.pop((b.plant, b.layer), False)) for b, _ in pairs]


def _render_plant(renderer: Renderer, plant: Plant, out: Path | None) -> list[tuple[Bundle, bool]]:
    """The plant's bundles, each with True when ``out`` held it already (same inputs) and it was read back."""
    if out is None:
        return [(b, False) for b in renderer.render_plant(plant)]
    reused: set[str] = set()

    def reuse(head: Bundle) -> tuple[BundleFile, ...] | None:
        files = existing_files(out, head)
        if files is not None:
            reused.add(head.layer)
        return files

    return [(b, b.layer in reused) for b in renderer.render_plant(plant, reuse)]


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
