"""Disaster recovery: a replaced host, or a rebuilt plant, brought back to the release the state
says it ran, rendered again from the recorded commit with the plant's overlays, and checked.

What each layer ran is the last ``layer.activated`` of the plant's layer, whose detail carries
the commit and the overlay hash of what it switched to. Nothing here prints or exits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from rollout.config.project import Plant, Project
from rollout.core.clock import Clock
from rollout.core.events import ROLLOUT, Event, EventSink
from rollout.core.render import Renderer
from rollout.core.steps import Steps, Target, Targets
from rollout.engine.executor import Executor, Options, PlantResult
from rollout.errors import ConfigError
from rollout.service.agent_actions import agent_rebuild, person_runner
from rollout.service.orchestrator import new_rollout_id
from rollout.service.rollbacks import journaled
from rollout.service.state import open_state
from rollout.state.journal import Journal, RolloutRecord


@dataclass(frozen=True)
class Ran:
    """What the state says one layer of the plant last switched to."""

    layer: str
    release: str
    commit: str | None
    overlay_hash: str | None
    rollout: str | None = None
    """The rollout or rollback that made the switch."""
    assumed: str = ""
    """How the commit was found when the switch did not record it ('' when it did)."""


def recorded(journal: Journal, plant: str, layers: list[str]) -> dict[str, Ran]:
    """Each layer's last switch to a release (a layer last switched to nothing is left out)."""
    found: dict[str, Ran] = {}
    seen: dict[tuple[str, str, object], str] = {}
    """(layer, release, commit) -> its overlay hash when deployed: a switch back to it by a
    plant-IT rollback (which renders nothing) records none of its own."""
    for stored in journal.events(plant=plant, kinds=("layer.activated",)):
        event = stored.event
        if event.layer not in layers:
            continue
        commit, overlays = event.detail.get("commit"), event.detail.get("overlay_hash")
        if event.release in (None, "nothing") and commit is None:
            found.pop(event.layer, None)
            continue
        key = (event.layer, str(event.release), commit)
        if overlays is not None:
            seen[key] = str(overlays)
        found[event.layer] = Ran(event.layer, str(event.release), _text(commit), seen.get(key), stored.rollout)
    return found


@dataclass(frozen=True)
class Planned:
    """A restore rendered before any host is touched: its targets and checks, the commit of its
    lowest layer, and what it assumed where the state was silent (recorded as warnings)."""

    targets: Targets
    steps: Steps
    commit: str
    assumed: tuple[str, ...] = ()


def restore_plan(project: Project, journal: Journal, plant: Plant, host: str | None, current_overlays: bool) -> Planned:
    """What ``rollout restore`` (and the console's restore) would do, or ConfigError saying why not.

    A layer switched before rollout recorded commits and overlay hashes is restored only with
    ``current_overlays``: from the commit of the rollout that switched it (or, for a rollback
    to a named release, the commit that release's ref names now), with the overlays as they are."""
    check_host(plant, host)
    ran = recorded(journal, plant.name, [layer.name for layer in project.config.layers])
    if current_overlays:  # only the layers restored: another layer's silence is not this restore's
        scope = {
            layer.name
            for layer in project.config.layers
            if any(host in (None, h.name) for h in plant.inventory.group_hosts(layer.inventory_group))
        }
        ran = {name: _with_commit(project, journal, was) if name in scope else was for name, was in ran.items()}
    targets, steps, commit = plan_restore(project, plant, ran, host, current_overlays)
    restored = {layer for layer, _ in targets}
    assumed = tuple(f"layer {w.layer}: {w.assumed}" for w in ran.values() if w.assumed and w.layer in restored)
    return Planned(targets, steps, commit, assumed)


def _with_commit(project: Project, journal: Journal, was: Ran) -> Ran:
    """``was`` with a commit: its own, else its rollout's (when that rollout was of the same
    release), else what the release's name resolves to in the code base now."""
    if was.commit is not None:
        return was
    silent = f"the state records no commit or overlays of {was.release}"
    record = journal.rollout(was.rollout) if was.rollout else None
    if record is not None and record.commit and record.release == was.release:
        how = f"{silent}; restored from {record.commit[:12]}, the commit of rollout {record.id}"
        return replace(was, commit=record.commit, assumed=how)
    try:
        release = project.release(was.release, f"release {was.release} of layer {was.layer}")
    except ConfigError as exc:
        raise ConfigError.one(
            "--current-overlays",
            f"{silent} on layer {was.layer}, and {was.release} names no commit of the code base now "
            f"({exc}): not restored",
            expected=f"a tag or branch {was.release} in the code base",
        ) from exc
    how = f"{silent}; restored from {str(release.commit)[:12]}, what the ref {was.release} names now"
    return replace(was, commit=release.commit, assumed=how)


def plan_restore(
    project: Project, plant: Plant, ran: dict[str, Ran], host: str | None, current_overlays: bool
) -> tuple[Targets, Steps, str]:
    """The targets and checks of the hosts to restore, rendered from the recorded commits, and
    the commit (of the lowest layer restored); ConfigError, before any host is touched, when the state lacks
    a commit or the plant's overlays changed since (unless ``current_overlays``)."""
    if not ran:
        raise ConfigError.one(
            "--plant", f"the state records no release deployed on {plant.name}", expected="a plant deployed before"
        )
    targets: Targets = {}
    fields: dict[tuple[str, str], dict[str, dict[str, str]]] = {}
    renderers: dict[tuple[str, str], Renderer] = {}
    for layer in project.config.layers:
        was = ran.get(layer.name)
        hosts = [h for h in plant.inventory.group_hosts(layer.inventory_group) if host in (None, h.name)]
        if was is None or not hosts:
            continue
        if was.commit is None:
            raise ConfigError.one(
                "--current-overlays",
                f"the state does not record the commit or the overlays of {was.release} on layer {layer.name} "
                "(switched before rollout recorded them): not restored",
                expected="--current-overlays to restore it from the commit of the rollout that deployed it "
                "(or what its release's ref names now) with the plant's overlays as they are now",
            )
        renderer = _renderer(project, was, renderers)
        _same_overlays(renderer.overlay_hash(plant), was, current_overlays)
        bundle = next(b for b in renderer.render_plant(plant) if b.layer == layer.name)
        steps = renderer.render_steps(plant)
        for h in hosts:
            targets[(layer.name, h.name)] = Target.of(bundle)
            fields[(layer.name, h.name)] = steps.get((layer.name, h.name), {})
    if not targets:
        raise ConfigError.one(
            "--host",
            f"{host} runs no layer of {plant.name} that the state records",
            expected="a host of the plant's inventory",
        )
    return targets, Steps(fields), str(next(iter(targets.values())).commit)


def _renderer(project: Project, was: Ran, renderers: dict[tuple[str, str], Renderer]) -> Renderer:
    """The code base at the recorded commit, under the release's own name (same folder, same manifest)."""
    key = (str(was.commit), was.release)
    if key not in renderers:
        release = project.release(str(was.commit), f"the commit recorded for {was.release}")
        renderers[key] = Renderer(project, replace(release, id=was.release))
    return renderers[key]


def _same_overlays(now: str, was: Ran, current_overlays: bool) -> None:
    if current_overlays or was.overlay_hash == now:
        return
    said = "were not recorded" if was.overlay_hash is None else "changed since"
    raise ConfigError.one(
        "--current-overlays",
        f"the overlays layer {was.layer} ran with at {was.release} {said} (recorded "
        f"{(was.overlay_hash or 'nothing')[:12]}, now {now[:12]}): not restored",
        expected="--current-overlays to restore with the plant's overlays as they are now",
    )


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def check_host(plant: Plant, host: str | None) -> None:
    """Refuse a host the plant's inventory does not have (ConfigError)."""
    if host is not None and host not in plant.inventory.hosts:
        raise ConfigError.one("--host", f"no host {host!r} in plant {plant.name}", expected="a host of its inventory")


def locked_restore(
    project: Project,
    plant_name: str,
    host: str | None,
    current_overlays: bool,
    options: Options,
    display: EventSink,
    clock: Clock,
    reason: str = "",
    journal: Journal | None = None,
) -> PlantResult:
    """``rollout restore``: holding the plant's lock and journaled like a plant-IT rollback (a
    record of kind "restore"); everything is rendered before a host is touched."""
    plant = project.plant(plant_name)
    journal = journal or open_state(project)
    planned = restore_plan(project, journal, plant, host, current_overlays)
    release = ", ".join(sorted({t.label() for t in planned.targets.values()}))
    rid = "restore-" + new_rollout_id(clock.now())
    spec: dict[str, object] = {"kind": "restore", "plant": plant_name, "host": host, "reason": reason, "waves": []}
    spec.update(current_overlays=current_overlays, assumed=list(planned.assumed))
    record = RolloutRecord(rid, "restore", release, planned.commit, time.time(), options.operator, spec)
    rebuild = _rebuild(project, journal, rid, plant, planned.targets, planned.steps, options)

    def work(sink: EventSink) -> PlantResult:
        for note in planned.assumed:  # in the journal and on the screen before any host changes
            sink(Event("warning", ROLLOUT, detail={"reason": f"{plant_name}: {note}"}))
        return rebuild(sink)

    return journaled(journal, plant_name, record, display, work)


def _rebuild(
    project: Project, journal: Journal, rid: str, plant: Plant, targets: Targets, steps: Steps, options: Options
) -> Callable[[EventSink], PlantResult]:
    """The rebuild itself: here, or by the plant's agent for an agent plant."""
    if plant.config.execution == "agent":
        runner = person_runner(project, journal, rid, options.operator)
        return lambda sink: agent_rebuild(runner, plant.name, targets, steps, sink)
    return lambda sink: Executor(project, options, sink).rebuild(plant, targets, steps)
