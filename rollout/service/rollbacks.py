"""Plant IT's rollback, now: each host back to what it ran before, or to a release. Nothing here prints or exits."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from rollout.config.models import LayerConfig
from rollout.config.project import Plant, Project
from rollout.core.bundle import Bundle
from rollout.core.clock import Clock
from rollout.core.events import DURABLE, PLANT_DONE, ROLLOUT, Event, EventSink
from rollout.core.render import Renderer
from rollout.engine.executor import Executor, Options, PlantResult, Steps, Target
from rollout.engine.layout import Running
from rollout.errors import ConfigError
from rollout.service import assets
from rollout.service.agent_actions import agent_rollback, person_runner
from rollout.service.orchestrator import new_rollout_id
from rollout.service.state import open_state
from rollout.service.workorders import render_steps
from rollout.state.journal import Journal, RolloutRecord


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

    def choose(running: dict[tuple[str, str], Running]) -> tuple[dict[tuple[str, str], Target], Steps]:
        targets = previous_targets(executor, plant, layers, running)
        commit = previous_commit(running, targets)  # read before any host changes
        return _with_bundles(project, plant, targets), render_steps(project, plant, commit) if commit else Steps({})

    return executor.rollback(plant, layers, choose)


def _with_bundles(
    project: Project, plant: Plant, targets: dict[tuple[str, str], Target]
) -> dict[tuple[str, str], Target]:
    """Each target with its release's bundle rendered again where that is the bundle the host
    staged (the same files): the switch back then checks the staged copy against it and, if
    its files drifted, stages a clean copy first instead of returning to them. A release that
    no longer renders, or renders other files (the overlays changed), is returned to as it is."""
    rendered: dict[tuple[str, str], dict[str, Bundle]] = {}
    found: dict[tuple[str, str], Target] = {}
    for key, target in targets.items():
        found[key] = target
        if not target.commit or not target.release or target.bundle is not None:
            continue
        which = (target.commit, target.release)
        if which not in rendered:
            try:
                release = replace(project.release(target.commit), id=target.release)  # its own name: same folder
                rendered[which] = {b.layer: b for b in Renderer(project, release).render_plant(plant)}
            except ConfigError:
                rendered[which] = {}
        bundle = rendered[which].get(key[0])
        if bundle is not None and bundle.bundle_hash == target.bundle_hash:
            found[key] = replace(target, bundle=bundle)
    return found


def previous_targets(
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


def previous_commit(running: dict[tuple[str, str], Running], targets: dict[tuple[str, str], Target]) -> str | None:
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


def locked_rollback(
    project: Project,
    plant_name: str,
    to: str | None,
    layer: str | None,
    options: Options,
    display: EventSink,
    clock: Clock,
    reason: str = "",
    journal: Journal | None = None,
) -> PlantResult:
    """Plant IT's rollback, holding the plant's lock and recorded in the journal, with ``reason``
    (why it was asked for, shown by ``rollout history``) in its spec and its ``rollout.created``.

    Whatever happens, the record ends with a terminal event: refused input (nothing changed)
    or an internal error halts it, with the reason; the outcome releases the lock in the same write.
    """
    project.plant(plant_name)
    _layers_from(project, layer)  # a bad --layer is refused before anything is recorded
    journal = journal or open_state(project)
    rid = "rollback-" + new_rollout_id(clock.now())
    spec: dict[str, object] = {
        "kind": "rollback",
        "plant": plant_name,
        "to": to,
        "layer": layer,
        "reason": reason,
        "waves": [],
    }
    record = RolloutRecord(rid, "rollback", to, None, time.time(), options.operator, spec)
    return journaled(journal, plant_name, record, display, _work(project, journal, rid, plant_name, to, layer, options))


def _work(
    project: Project, journal: Journal, rid: str, plant: str, to: str | None, layer: str | None, options: Options
) -> Callable[[EventSink], PlantResult]:
    """The rollback itself: here, or by the plant's agent for an agent plant."""
    if project.plants[plant].config.execution == "agent":
        names = [lay.name for lay in _layers_from(project, layer)]
        runner = person_runner(project, journal, rid, options.operator)
        return lambda sink: agent_rollback(runner, plant, to, names, sink)
    return lambda sink: rollback(project, plant, to, layer, options, sink)


def journaled(
    journal: Journal, plant: str, record: RolloutRecord, display: EventSink, work: Callable[[EventSink], PlantResult]
) -> PlantResult:
    """A person's work on one plant (a rollback, a restore), holding the plant's lock and recorded
    as ``record``: whatever happens, the record ends with a terminal event. Refused input
    (nothing changed) or an internal error halts it, with the reason; the outcome releases the
    lock in the same write."""
    operator = record.operator
    journal.acquire(plant, record.id, f"{record.kind} by {operator}", 3600.0, operator)
    sink = _RollbackRecorder(journal, record.id, plant, display)
    try:
        journal.create(record)
        reason = record.spec.get("reason", "")
        sink(Event("rollout.created", ROLLOUT, detail={"release": record.release, "by": operator, "reason": reason}))
        try:
            result = work(sink)
        except ConfigError as exc:
            sink(Event("rollout.halted", ROLLOUT, detail={"reason": f"refused, nothing changed: {exc}"}))
            raise
        except Exception as exc:
            why = f"internal error, the plant's state is unknown: {type(exc).__name__}: {exc}"
            sink(Event("plant.attention", plant, detail={"reason": why}))
            sink(Event("rollout.halted", ROLLOUT, detail={"reason": why}))
            raise
        if result.assets:
            _keep_assets(journal, sink, result)
        sink(Event("rollout.finished", ROLLOUT, detail={"plants": {plant: result.outcome}}))
        return result
    finally:
        if sink.holding:
            journal.release(plant, record.id)


def _keep_assets(journal: Journal, record: EventSink, result: PlantResult) -> None:
    """What the rollback found on the hosts; failing to keep it is a warning, not a failed rollback."""
    warning = assets.keep(journal, result.assets)
    if warning:
        record(Event("warning", ROLLOUT, detail={"reason": f"{result.plant}: {warning}"}))


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
