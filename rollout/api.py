"""What the commands do, as functions that return data. Nothing here prints or exits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .bundle import Bundle
from .bundle_writer import write_bundle
from .codebase import Release
from .customization import Customization, customization
from .diff import FileChange, diff_bundles
from .engine import Executor, Options, PlantResult, Steps, Target
from .errors import ConfigError, Problem
from .events import EventSink, discard
from .layout import Running
from .models import LayerConfig
from .plan import Plan, make_plan
from .project import Plant, Project, find_project, load_project
from .render import Renderer
from .transports.base import TransportError
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


# -- deploying, rolling back, reading what runs --------------------------------------


def deploy(
    project: Project, ref: str | None, plants: list[str], options: Options, sink: EventSink
) -> list[PlantResult]:
    """Deploy ``ref`` to the chosen plants (all, in plan order, when none are chosen).

    Everything is rendered and checked before the first host is touched, so bad input
    stops the deploy with nothing changed.
    """
    release = project.release(ref)
    order = [p.name for wave in make_plan(project, release.id, release.commit).waves for p in wave.plants]
    chosen = [project.plant(n).name for n in plants] if plants else order
    renderer = Renderer(project, release)
    problems: list[Problem] = []
    work: list[tuple[Plant, dict[str, Bundle], Steps]] = []
    for name in sorted(chosen, key=order.index):
        plant = project.plants[name]
        try:
            bundles = {b.layer: b for b in renderer.render_plant(plant)}
            work.append((plant, bundles, Steps(renderer.render_steps(plant))))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    executor = Executor(project, options, sink)
    return [executor.deploy(plant, bundles, steps, _old_steps(project, plant, steps)) for plant, bundles, steps in work]


def _old_steps(project: Project, plant: Plant, fallback: Steps) -> Callable[[str | None], Steps]:
    """Checks of the release a host ran before, rendered from its commit (else the new ones)."""
    cache: dict[str | None, Steps] = {}

    def steps(commit: str | None) -> Steps:
        if commit not in cache:
            try:
                renderer = Renderer(project, project.release(commit)) if commit else None
                cache[commit] = Steps(renderer.render_steps(plant)) if renderer else fallback
            except ConfigError:
                cache[commit] = fallback
        return cache[commit]

    return steps


def rollback(
    project: Project, plant_name: str, to: str | None, layer: str | None, options: Options, sink: EventSink
) -> PlantResult:
    """Roll a plant (or ``layer`` and the layers above it) back now, with the same checks.

    Without ``to``, each host's layer goes back to the release its own record says it ran
    before; with ``to``, to that release, rendered afresh.
    """
    plant = project.plant(plant_name)
    layers = _layers_from(project, layer)
    executor = Executor(project, options, sink)
    if to is not None:
        release = project.release(to, "--to")
        renderer = Renderer(project, release)
        bundles = {b.layer: b for b in renderer.render_plant(plant)}
        steps = Steps(renderer.render_steps(plant))
        targets = {
            (lay.name, host.name): Target.of(bundles[lay.name]) for lay in layers for host in executor.hosts(plant, lay)
        }
        return executor.rollback(plant, targets, steps, layers)
    running = executor.running(plant)
    targets = {}
    for lay in layers:
        for host in executor.hosts(plant, lay):
            previous = running[(lay.name, host.name)].record.get("previous") or {}
            if not previous.get("release_dir"):
                raise ConfigError.one(
                    "--plant",
                    f"{host.name} has no earlier release of layer {lay.name} to go back to",
                    expected="a host that ran a release before the current one (or --to RELEASE)",
                )
            targets[(lay.name, host.name)] = Target(
                previous["release_dir"], previous.get("release"), previous.get("commit"), previous.get("bundle_hash")
            )
    steps = _old_steps(project, plant, Steps({}))(_previous_commit(running, targets))
    return executor.rollback(plant, targets, steps, layers)


def _previous_commit(running: dict[tuple[str, str], Running], targets: dict[tuple[str, str], Target]) -> str | None:
    """The commit of the release being returned to, from the staged manifest's record history."""
    for key, target in targets.items():
        previous = running[key].record.get("previous") or {}
        if previous.get("release_dir") == target.release_dir and previous.get("commit"):
            return str(previous["commit"])
    return None


def _layers_from(project: Project, layer: str | None) -> list[LayerConfig]:
    layers = list(project.config.layers)
    if layer is None:
        return layers
    names = [lay.name for lay in layers]
    if layer not in names:
        raise ConfigError.one("--layer", f"no layer named {layer!r}", expected="one of: " + ", ".join(names))
    return layers[names.index(layer) :]


@dataclass(frozen=True)
class HostStatus:
    plant: str
    layer: str
    host: str
    running: Running | None
    error: str | None


def status(project: Project, plants: list[str], options: Options) -> list[HostStatus]:
    """What runs on every host of the chosen plants, read from the hosts themselves."""
    chosen = [project.plant(n) for n in plants] if plants else list(project.plants.values())
    executor = Executor(project, options, discard)
    rows: list[HostStatus] = []
    for plant in chosen:
        for (layer, host), state in executor.running_each(plant).items():
            if isinstance(state, TransportError):
                rows.append(HostStatus(plant.name, layer, host, None, state.reason))
            elif isinstance(state, Exception):
                raise state
            else:
                rows.append(HostStatus(plant.name, layer, host, state, None))
    return rows
