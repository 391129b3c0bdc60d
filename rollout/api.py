"""What the commands do, as functions that return data. Nothing here prints or exits."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from .bundle import Bundle, BundleFile
from .bundle_writer import existing_files, write_bundle
from .codebase import Release
from .customization import Customization, customization
from .diff import FileChange, diff_bundles
from .engine import Executor, Options, PlantResult, Steps, Target
from .errors import ConfigError, Problem
from .events import DURABLE, PLANT_DONE, ROLLOUT, Event, EventSink, discard
from .fanout import Failed, fan_out
from .journal import Journal, JournalEvent, RolloutRecord, SqliteJournal
from .layout import Running
from .models import LayerConfig
from .orchestrator import Orchestrator, RolloutResult, Work, _outcomes, new_rollout_id, plan_spec
from .plan import Plan, WavePlan, make_plan
from .project import Plant, Project, find_project, load_project
from .rehearsal import rehearsal_project
from .render import Renderer
from .transports.base import TransportError
from .values import Source, merge_values
from .yamlfile import Path_

T = TypeVar("T")


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


# -- deploying, rolling back, reading what runs --------------------------------------


def _old_steps(project: Project, plant: Plant, fallback: Steps) -> Callable[[str | None], Steps]:
    """Checks and steps of the release a host ran before, rendered from its commit; ``fallback``
    when no commit is known (the host ran nothing: only the stop step of what is removed runs).

    A commit whose checks cannot be rendered raises ConfigError, every time it is asked: the
    executor asks before it touches a host, so a deploy is refused rather than a rollback left
    with the wrong checks."""
    cache: dict[str | None, Steps | ConfigError] = {}

    def steps(commit: str | None) -> Steps:
        if commit not in cache:
            try:
                renderer = Renderer(project, project.release(commit)) if commit else None
                cache[commit] = Steps(renderer.render_steps(plant)) if renderer else fallback
            except ConfigError as exc:
                cache[commit] = exc
        found = cache[commit]
        if isinstance(found, ConfigError):
            raise found
        return found

    return steps


def rollback(
    project: Project, plant_name: str, to: str | None, layer: str | None, options: Options, sink: EventSink
) -> PlantResult:
    """Roll a plant (or ``layer`` and the layers above it) back now, with the same checks.

    Without ``to``, each host's layer goes back to the release its own record says it ran
    before; with ``to``, to that release, rendered afresh. Everything is rendered, and every
    host read, before anything changes.
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
        return executor.rollback(plant, layers, lambda _: (targets, steps))
    old_steps = _old_steps(project, plant, Steps({}))

    def choose(running: dict[tuple[str, str], Running]) -> tuple[dict[tuple[str, str], Target], Steps]:
        targets = _previous_targets(executor, plant, layers, running)
        return targets, old_steps(_previous_commit(running, targets))

    return executor.rollback(plant, layers, choose)


def _previous_targets(
    executor: Executor, plant: Plant, layers: list[LayerConfig], running: dict[tuple[str, str], Running]
) -> dict[tuple[str, str], Target]:
    """What each host's own record says it ran before its current release."""
    targets: dict[tuple[str, str], Target] = {}
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
    return targets


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


def under_way(project: Project) -> list[HistoryEntry]:
    """Rollouts that have not ended: running, paused for approval, or interrupted."""
    return [e for e in history(project, None) if e.state not in ("finished", "halted")]


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


# -- staged rollouts: the journal, waves, approvals, resume, history ----------------------

JOURNAL_FILE = ".rollout/state.db"


def journal_for(project: Project) -> SqliteJournal:
    return SqliteJournal(project.root / JOURNAL_FILE)


REHEARSAL_DIR = ".rollout/rehearsal"


def rehearsal_journal(project: Project) -> SqliteJournal:
    return SqliteJournal(project.root / REHEARSAL_DIR / "state.db")


def render_work(project: Project, release: Release, plants: list[str]) -> dict[str, Work]:
    """Render every plant of the rollout up front: bad input stops it before any host is touched."""
    renderer = Renderer(project, release)
    problems: list[Problem] = []
    works: dict[str, Work] = {}
    for name in plants:
        plant = project.plants[name]
        try:
            bundles = {b.layer: b for b in renderer.render_plant(plant)}
            steps = Steps(renderer.render_steps(plant))
            works[name] = Work(bundles, steps, _old_steps(project, plant, steps))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return works


def _select(plan: Plan, waves: list[str], plants: list[str], project: Project) -> Plan:
    """The plan cut down to the chosen waves and plants (all when none are chosen)."""
    names = [w.name for w in plan.waves]
    for wanted in waves:
        if wanted not in names:
            raise ConfigError.one("--wave", f"no wave named {wanted!r}", expected="one of: " + ", ".join(names))
    chosen = {project.plant(p).name for p in plants}
    kept: list[WavePlan] = []
    for wave in plan.waves:
        if waves and wave.name not in waves:
            continue
        members = tuple(p for p in wave.plants if not chosen or p.name in chosen)
        if members:
            kept.append(replace(wave, plants=members, parallelism=min(wave.parallelism, len(members))))
    if not kept:
        raise ConfigError.one("--plant", "no plant left to deploy", expected="plants of the chosen waves")
    return replace(plan, waves=tuple(kept))


def start_rollout(
    project: Project,
    ref: str | None,
    waves: list[str],
    plants: list[str],
    options: Options,
    display: EventSink,
    clock: Callable[[], dt.datetime],
    approve_through: str | None = None,
    force_window: bool = False,
    journal: Journal | None = None,
) -> RolloutResult:
    """A staged rollout of ``ref``: rendered and checked first, then run wave by wave."""
    release = project.release(ref)
    full = make_plan(project, release.id, release.commit)
    plan = _select(full, waves, plants, project)
    names = [w.name for w in full.waves]
    if approve_through is not None and approve_through not in names:
        raise ConfigError.one("--approve-through", f"no wave named {approve_through!r}", expected=", ".join(names))
    members = [p.name for w in plan.waves for p in w.plants]
    works = render_work(project, release, members)
    journal = journal or journal_for(project)
    spec = plan_spec(plan, approve_through, force_window)
    record = RolloutRecord(
        new_rollout_id(clock()), "deploy", release.id, release.commit, time.time(), options.operator, spec
    )
    orchestrator = Orchestrator(
        project, journal, lambda sink: Executor(project, options, sink), works.__getitem__, display, clock
    )
    insecure = options.known_hosts is None
    warnings = ["SSH host keys are NOT verified (--insecure-skip-host-key-check)"] if insecure else []
    return orchestrator.start(record, members, warnings)


def resume_rollout(
    project: Project, rollout_id: str | None, options: Options, display: EventSink, clock: Callable[[], dt.datetime]
) -> RolloutResult:
    """Go on with a rollout that was interrupted or paused (default: the latest unfinished one)."""
    journal = journal_for(project)
    record = _unfinished(journal, rollout_id)
    release = project.release(record.commit or record.release, "--release")
    members = [p for w in record.spec["waves"] for p in w["plants"]]
    works = render_work(project, replace(release, id=record.release or release.id), members)
    resumed = replace(record, operator=options.operator)
    orchestrator = Orchestrator(
        project, journal, lambda sink: Executor(project, options, sink), works.__getitem__, display, clock
    )
    return orchestrator.resume(resumed)


def _unfinished(journal: Journal, rollout_id: str | None) -> RolloutRecord:
    if rollout_id is not None:
        record = journal.rollout(rollout_id)
        if record is None:
            raise ConfigError.one(
                "ROLLOUT", f"no rollout {rollout_id!r} in the journal", expected="an id from rollout history"
            )
        return record
    for record in reversed(journal.rollouts()):
        if record.kind == "deploy" and rollout_state(journal.events(rollout=record.id)) in (
            "running",
            "paused",
            "interrupted",
        ):
            return record
    raise ConfigError.one("ROLLOUT", "no unfinished rollout to resume", expected="a paused or interrupted rollout")


def approve(project: Project, rollout_id: str, operator: str) -> str:
    """Let a paused rollout go on to the wave it waits for; returns that wave's name."""
    journal = journal_for(project)
    record = _unfinished(journal, rollout_id)
    events = journal.events(rollout=record.id)
    waiting = [e.event.detail["wave"] for e in events if e.event.kind == "approval.waiting"]
    granted = {e.event.detail["wave"] for e in events if e.event.kind == "approval.granted"}
    pending = [w for w in waiting if w not in granted]
    if not pending:
        raise ConfigError.one(
            "ROLLOUT", f"rollout {record.id} is not waiting for an approval", expected="a paused rollout"
        )
    wave = str(pending[-1])
    journal.append(record.id, Event("approval.granted", ROLLOUT, detail={"wave": wave, "by": operator}))
    return wave


def rollout_state(events: list[JournalEvent]) -> str:
    """finished, halted, paused, running or interrupted: read from the rollout's events alone."""
    kinds = [e.event.kind for e in events]
    if "rollout.finished" in kinds:
        return "finished"
    if "rollout.halted" in kinds:
        return "halted"
    if kinds and kinds[-1] in ("rollout.paused",):
        return "paused"
    locks_open = kinds.count("plant.locked") > kinds.count("plant.unlocked")
    return "running" if locks_open else "interrupted"


@dataclass(frozen=True)
class HistoryEntry:
    record: RolloutRecord
    state: str
    outcomes: dict[str, str]
    ended: float | None
    release: str | None
    """The release deployed; for a rollback, what the plant went back to (as its hosts recorded)."""


def history(project: Project, plant: str | None) -> list[HistoryEntry]:
    journal = journal_for(project)
    if plant is not None:
        project.plant(plant)
    entries = []
    for record in journal.rollouts(plant):
        events = journal.events(rollout=record.id)
        outcomes = _outcomes(events)
        if plant is not None:
            outcomes = {plant: outcomes.get(plant, "not reached")}
        ended = events[-1].event.time if events else None
        release = record.release or _went_back_to(events)
        entries.append(HistoryEntry(record, rollout_state(events), outcomes, ended, release))
    return entries


def _went_back_to(events: list[JournalEvent]) -> str | None:
    """The releases a rollback took its plant to, from its ``rollback.started`` event."""
    found = [e.event.release for e in events if e.event.kind == "rollback.started" and e.event.release]
    return found[-1] if found else None


def locked_rollback(
    project: Project,
    plant_name: str,
    to: str | None,
    layer: str | None,
    options: Options,
    display: EventSink,
    clock: Callable[[], dt.datetime],
) -> PlantResult:
    """Plant IT's rollback, holding the plant's lock and recorded in the journal.

    Whatever happens, the record ends with a terminal event: refused input (nothing changed)
    or an internal error halts it, with the reason; the outcome releases the lock in the same write.
    """
    project.plant(plant_name)
    _layers_from(project, layer)  # a bad --layer is refused before anything is recorded
    journal = journal_for(project)
    rid = "rollback-" + new_rollout_id(clock())
    spec: dict[str, object] = {"kind": "rollback", "plant": plant_name, "to": to, "layer": layer, "waves": []}
    journal.acquire(plant_name, rid, f"rollback by {options.operator}", 3600.0, options.operator)
    record = _RollbackRecorder(journal, rid, plant_name, display)
    try:
        journal.create(RolloutRecord(rid, "rollback", to, None, time.time(), options.operator, spec))
        record(Event("rollout.created", ROLLOUT, detail={"release": to, "by": options.operator}))
        try:
            result = rollback(project, plant_name, to, layer, options, record)
        except ConfigError as exc:
            record(Event("rollout.halted", ROLLOUT, detail={"reason": f"refused, nothing changed: {exc}"}))
            raise
        except Exception as exc:
            why = f"internal error, the plant's state is unknown: {type(exc).__name__}: {exc}"
            record(Event("plant.attention", plant_name, detail={"reason": why}))
            record(Event("rollout.halted", ROLLOUT, detail={"reason": why}))
            raise
        record(Event("rollout.finished", ROLLOUT, detail={"plants": {plant_name: result.outcome}}))
        return result
    finally:
        if record.holding:
            journal.release(plant_name, rid)


class _RollbackRecorder:
    """The sink of a plant-IT rollback: journal first (synced where it matters), then show; the
    plant's outcome and the release of its lock are one write."""

    def __init__(self, journal: Journal, rid: str, plant: str, display: EventSink) -> None:
        self.journal, self.rid, self.plant, self.display = journal, rid, plant, display
        self.holding = True

    def __call__(self, event: Event) -> None:
        if self.holding and event.kind in PLANT_DONE and event.plant == self.plant:
            events = [event, Event("plant.unlocked", self.plant)]
            seqs = self.journal.append_releasing(self.rid, events, self.plant, self.rid)
            self.holding = False
        else:
            events, seqs = [event], [self.journal.append(self.rid, event)]
        if event.kind in DURABLE:
            self.journal.sync()
        for each, seq in zip(events, seqs, strict=True):
            self.display(replace(each, seq=seq, rollout=self.rid))


def rehearse(
    project: Project,
    ref: str | None,
    waves: list[str],
    plants: list[str],
    options: Options,
    display: EventSink,
    clock: Callable[[], dt.datetime],
) -> RolloutResult:
    """The staged rollout of ``ref`` on simulated copies of every plant; no real host is touched.

    Approvals count as given, windows as open, and a bake is one round of checks. The copies
    live in ``.rollout/rehearsal/`` with their own journal; their services are stopped and
    their releases removed at the end.
    """
    root = project.root / REHEARSAL_DIR
    shutil.rmtree(root, ignore_errors=True)
    copy = rehearsal_project(project, root / "hosts")
    release = copy.release(ref)
    last_wave = make_plan(copy, release.id, release.commit).waves[-1].name
    quick = replace(
        copy,
        config=copy.config.model_copy(
            update={
                "strategy": copy.config.strategy.model_copy(
                    update={
                        "waves": [
                            w.model_copy(update={"bake": min(w.bake or copy.config.strategy.bake, 1.0)})
                            for w in copy.config.strategy.waves
                        ]
                    }
                )
            }
        ),
    )
    journal = SqliteJournal(root / "state.db")
    try:
        return start_rollout(quick, ref, waves, plants, options, display, clock, last_wave, True, journal)
    finally:
        _clear(quick, release, options)


def _clear(project: Project, release: Release, options: Options) -> None:
    """Stop what a rehearsal started: every plant back to nothing, its (rendered) stop steps run."""
    executor = Executor(project, options, discard)
    renderer = Renderer(project, release)
    for plant in project.plants.values():
        nothing = {
            (layer.name, host.name): Target(None)
            for layer in executor.layers()
            for host in executor.hosts(plant, layer)
        }
        steps = Steps(renderer.render_steps(plant))
        executor.restore(plant, nothing, _always(steps), "rehearsal over")


def _always(steps: Steps) -> Callable[[str | None], Steps]:
    return lambda _: steps
