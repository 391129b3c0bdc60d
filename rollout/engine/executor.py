"""The executor: the one place with side effects. Takes one plant from what it runs to a target.

Deploying and rolling back are the same pipeline, ``converge`` (rollout/engine/converge.py),
aimed at different targets: for each layer, stage the target on every host, switch
``current`` atomically (or remove it, for "nothing installed"), run the restart step, run
the checks. A host that already runs its target is left alone, so every step can be repeated.

A forward deploy that fails on a layer converges every layer it touched, in reverse
order, back to what each host ran before, runs the restart steps again and checks the
old release with the checks its work order carries (rendered before any host changed).
If that fails too, the touched layers are marked as needing attention.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from rollout.config.inventory import Host
from rollout.config.models import LayerConfig
from rollout.config.project import Plant, Project
from rollout.core.assets import HostAssets
from rollout.core.clock import Clock, SystemClock
from rollout.core.events import EventSink
from rollout.core.steps import CheckResult, Key, PlantResult, Steps, Target, Targets, targets_from_json, targets_to_json
from rollout.core.workorder import RenderBundles, RenderSteps, WorkOrder
from rollout.engine import hoststate, preflight
from rollout.engine.connections import Connections, Options, default_operator
from rollout.engine.context import PlantRun, common
from rollout.engine.converge import already, converge
from rollout.engine.fanout import HostResults, StepFailed, fan_out, reason_of
from rollout.engine.layout import Running
from rollout.engine.records import Records
from rollout.engine.seen import Seen
from rollout.engine.upkeep import commit_of, mark_attention, prune, to_prune
from rollout.transports.base import TransportError

__all__ = [
    "Choose",
    "Connections",
    "Executor",
    "Options",
    "PlantResult",
    "StepFailed",
    "Steps",
    "Target",
    "default_operator",
    "targets_from_json",
    "targets_to_json",
    "was",
]

Choose = Callable[[dict[Key, Running]], tuple[Targets, Steps]]
"""Picks a rollback's targets and checks from what the hosts run."""


def was(running: Running) -> Target:
    """The target a host runs now (to go back to it)."""
    return Target(running.release_dir, running.release, running.commit, running.bundle_hash)


class Executor:
    """Deploys and rolls back one plant at a time; announces every step to ``sink``."""

    def __init__(self, project: Project, options: Options, sink: EventSink, clock: Clock | None = None) -> None:
        self.project = project
        self.options = options
        self.sink = sink
        self.clock = clock or SystemClock()
        self.records = Records(options.operator, self.clock)
        """Records this executor wrote: newer than what it read at a plant's start."""
        self.seen = Seen()

    def _run(self, plant: Plant) -> PlantRun:
        conns = Connections(self.project, plant, self.options)
        return PlantRun(self.project, plant, conns, self.options, self.records, self.clock, self.sink)

    # -- reading ---------------------------------------------------------------------

    def running(self, plant: Plant, conns: Connections | None = None, probe: bool = False) -> dict[Key, Running]:
        """What every host of every layer runs, asked of the hosts themselves; an unreachable host raises.

        ``probe`` asks the preflight's questions in the same round trip."""
        found = self.read(plant, conns, probe)
        for error in found.failed.values():
            raise error
        return found.succeeded

    def running_each(
        self, plant: Plant, conns: Connections | None = None, probe: bool = False
    ) -> dict[Key, Running | Exception]:
        """Like ``running``, with the error in place of each host that did not answer."""
        return dict(self.read(plant, conns, probe).items())

    def read(
        self,
        plant: Plant,
        conns: Connections | None = None,
        probe: bool = False,
        assets: bool = False,
        stamps: Mapping[str, str] | None = None,
        leaving: Mapping[str, str] | None = None,
    ) -> HostResults[Key, Running]:
        """Every (layer, host)'s state or the error that stood in its way, in one fan-out.

        ``assets``: each host's first layer also says what the host is and runs (``assets_of``);
        ``stamps``: host -> its package database's stamp in its last record, so a host whose
        database is unchanged sends no package list (see ``rollout.core.assets``); ``leaving``:
        layer -> a deploy's target folder, so that a host running another release also hashes
        its files (``Running.drift``)."""
        own = conns is None
        conns = conns or Connections(self.project, plant, self.options)
        try:
            where = {(lay.name, host.name): (lay, host) for lay in self.layers() for host in self.hosts(plant, lay)}
            timeout = self.options.command_timeout
            asked = {key[1]: key for key in reversed(where)} if assets else {}

            def read_one(key: Key) -> Running:
                layer, host = where[key]
                ask = asked.get(host.name) == key
                known = (stamps or {}).get(host.name, "")
                unless = None if leaving is None else leaving.get(layer.name, "")
                step = hoststate.read_running(conns.dir(host, layer), timeout, probe, ask, known, unless)
                state = hoststate.parse_running(conns.run(host, step).stdout, probe)
                self.seen.note(plant.name, layer.name, host.name, state)
                return state

            return fan_out(list(where), read_one)
        finally:
            if own:
                conns.close()

    def assets_of(self, plant: Plant) -> tuple[HostAssets, ...]:
        """What each host of the plant that answered an asset read is and runs now."""
        return self.seen.assets(plant, self.layers(), self.hosts, self.records, self.clock.now().timestamp())

    def layers(self) -> list[LayerConfig]:
        return list(self.project.config.layers)

    def hosts(self, plant: Plant, layer: LayerConfig) -> tuple[Host, ...]:
        return plant.inventory.group_hosts(layer.inventory_group)

    # -- deploying ---------------------------------------------------------------------

    def deploy(
        self,
        order: WorkOrder,
        before: Targets | None = None,
        render: RenderSteps | None = None,
        keep: Callable[[WorkOrder], None] | None = None,
        clean: RenderBundles | None = None,
    ) -> PlantResult:
        """Take the plant to the order's release layer by layer; roll back what was done on failure.

        ``before`` is what the plant ran before this rollout began, when a resumed run already
        knows it (its hosts may be half way by now). ``render`` renders the checks of an older
        release the order lacks, at preflight, before any host changes (None: refuse instead);
        ``clean`` renders the bundle of a release a host leaves whose files drifted, so that a
        rollback stages it clean (``preflight.clean_copies``); ``keep`` is handed the order so
        completed, for the plant's later put-back. The result carries what each host is and
        runs (``assets_of``) when the options ask for assets."""
        result = self._deploy(order, before, render, keep, clean)
        return replace(result, assets=self.assets_of(self.project.plants[order.plant]))

    def _deploy(
        self,
        order: WorkOrder,
        before: Targets | None,
        render: RenderSteps | None,
        keep: Callable[[WorkOrder], None] | None,
        clean: RenderBundles | None,
    ) -> PlantResult:
        run = self._run(self.project.plants[order.plant])
        run.emit("plant.started", release=order.release)
        try:
            going = {lay.layer: lay.release_dir or "" for lay in order.layers}  # a host on another release leaves it
            found = self.read(run.plant, run.conns, True, self.options.assets, order.asset_stamps, going)
            if found.failed:
                return preflight.unreachable(run, found, order.release)
            now = found.succeeded
            if before is None:
                before = {key: was(state) for key, state in now.items()}
                run.emit("plant.before", detail={"before": targets_to_json(before)})
            order, unrenderable = preflight.with_old_steps(order, before, render)
            problem = preflight.room(run, order, now) or unrenderable
            if not problem:
                order = preflight.clean_copies(run, order, now, clean)
            if keep is not None:
                keep(order)
            if problem:
                run.emit("plant.preflight_failed", detail={"reason": problem})
                return PlantResult(order.plant, "preflight_failed", order.release, problem)
            return self._forward(run, order, now, before)
        finally:
            run.conns.close()

    def _forward(self, run: PlantRun, order: WorkOrder, now: dict[Key, Running], before: Targets) -> PlantResult:
        bundles = order.bundles
        targets = {key: Target.of(bundles[key[0]]) for key in run.keys()}
        # changed: by this rollout, a resumed run's hosts that its killed run moved included
        changed = any(
            not already(now[k], t) or now[k].restart_owed or before[k].release_dir != t.release_dir
            for k, t in targets.items()
        )
        # Hosts an interrupted run already moved are ours to put back if this run fails.
        touched = {key for key, state in now.items() if not already(state, before[key])}
        unsettled = set(touched)
        moved: set[Key] = set()  # by this run: its switches also pruned
        removals = to_prune(run, order, now, before)
        results: list[CheckResult] = []
        steps = order.new_steps()
        for layer in run.layers():
            try:
                results += converge(
                    run, layer, targets, now, steps, "deploy", moved, unsettled=unsettled, prune=removals
                )
            except StepFailed as failure:
                run.emit("layer.failed", layer=layer.name, release=order.release, detail={"reason": failure.reason})
                return self._roll_back(run, order, before, touched | moved, failure, results)
        left = {key: names for key, names in removals.items() if key not in moved}
        prune(run, left, now, self.options.command_timeout)
        run.emit("plant.done", release=order.release, detail={"changed": changed})
        return PlantResult(order.plant, "updated" if changed else "unchanged", order.release, checks=results)

    def _roll_back(
        self,
        run: PlantRun,
        order: WorkOrder,
        before: Targets,
        touched: set[Key],
        failure: StepFailed,
        results: list[CheckResult],
    ) -> PlantResult:
        release = order.release
        detail: dict[str, object] = {"reason": failure.reason, "layers": sorted({layer for layer, _ in touched})}
        run.emit("rollback.started", release=release, detail=detail)
        targets = {key: order.cleaned(before[key]) for key in touched}
        layers = [layer for layer in reversed(run.layers()) if any(key[0] == layer.name for key in touched)]
        steps_for = lambda name: order.steps_of(commit_of(targets, name))  # noqa: E731
        errors = self._converge_all(run, layers, targets, None, steps_for, results, only=touched)
        if errors:
            reason = f"deploy failed ({failure.reason}); rollback failed too ({'; '.join(errors)})"
            mark_attention(self.options.command_timeout, run, touched, reason)
            return PlantResult(order.plant, "attention", release, reason, results)
        run.emit("plant.rolled_back", release=release, detail={"reason": failure.reason})
        return PlantResult(order.plant, "rolled_back", release, failure.reason, results)

    def restore(
        self,
        order: WorkOrder,
        before: Targets,
        why: str,
        interrupted: bool = False,
        render: RenderSteps | None = None,
        keep: Callable[[WorkOrder], None] | None = None,
    ) -> PlantResult:
        """Put every host that differs from ``before`` back to it (a wave rolled back, a resumed rollback).

        ``interrupted``: a rollback was cut short; hosts it already switched back may not have
        been restarted, so every host is restarted and checked on ``before``."""
        run = self._run(self.project.plants[order.plant])
        label = common(t.label() for t in before.values())
        run.emit("rollback.started", release=label, detail={"reason": why})
        results: list[CheckResult] = []
        try:
            found = self.read(run.plant, run.conns)
            found.raise_bugs()
            now = found.succeeded
            differ = {key for key in run.keys() if key not in now or not already(now[key], before[key])}
            scope = set(before) if interrupted else differ
            layers = [layer for layer in reversed(run.layers()) if any(key[0] == layer.name for key in scope)]
            order, unrenderable = preflight.with_old_steps(order, before, render)
            if keep is not None:
                keep(order)
            if unrenderable:
                reason = f"{why}; not put back: {unrenderable}"
                mark_attention(self.options.command_timeout, run, scope, reason)
                return PlantResult(order.plant, "attention", label, reason, results)
            steps_for = lambda name: order.steps_of(commit_of(before, name))  # noqa: E731
            before = {key: order.cleaned(target) for key, target in before.items()}
            errors = self._converge_all(run, layers, before, now, steps_for, results, only=scope, unsettled=scope)
            if errors:
                reason = f"{why}; putting it back failed ({'; '.join(errors)})"
                mark_attention(self.options.command_timeout, run, differ, reason)
                return PlantResult(order.plant, "attention", label, reason, results)
        finally:
            run.conns.close()
        run.emit("plant.rolled_back", release=label, detail={"reason": why})
        return PlantResult(order.plant, "rolled_back", label, why, results)

    def recheck(self, plant: Plant, steps: Steps) -> str:
        """Run every layer's checks again on what the plant runs now (a wave's bake); '' when all pass."""
        run = self._run(plant)
        try:
            now = self.running(plant, run.conns)
            targets = {key: was(state) for key, state in now.items()}
            for layer in run.layers():
                converge(run, layer, targets, now, steps, "recheck")
        except (StepFailed, TransportError) as exc:
            return reason_of(exc)
        finally:
            run.conns.close()
        return ""

    def rollback(self, plant: Plant, layers: list[LayerConfig], choose: Choose) -> PlantResult:
        """Plant IT's rollback: read every host of ``layers``, let ``choose`` pick targets and checks
        from what they run, then converge the layers top first; a failure needs a person.

        A host that does not answer stops it before anything changes (``preflight_failed``);
        ``choose`` may raise ConfigError (nothing to go back to), also before anything changes.
        The result carries what each host is and runs, as ``deploy``'s does."""
        return replace(self._rollback(plant, layers, choose), assets=self.assets_of(plant))

    def _rollback(self, plant: Plant, layers: list[LayerConfig], choose: Choose) -> PlantResult:
        run = self._run(plant)
        try:
            names = {layer.name for layer in layers}
            found = self.read(plant, run.conns, assets=self.options.assets)
            found.raise_bugs()
            down = {key: str(error) for key, error in found.failed.items() if key[0] in names}
            if down:
                hosts = sorted({host for _, host in down})
                reason = f"not rolled back, nothing changed: {'; '.join(sorted(set(down.values())))}"
                run.emit("plant.preflight_failed", host=hosts[0], detail={"reason": reason, "hosts": hosts})
                return PlantResult(plant.name, "preflight_failed", None, reason)
            before = {key: state for key, state in found.succeeded.items() if key[0] in names}
            targets, steps = choose(before)
            return self._roll_back_to(run, layers, targets, before, steps)
        finally:
            run.conns.close()

    def rebuild(self, plant: Plant, targets: Targets, steps: Steps) -> PlantResult:
        """Disaster recovery: bring the hosts of ``targets`` (a replaced host, a rebuilt plant) to
        them, bottom layer first, staging what is missing, and check them; a failure needs a person."""
        run = self._run(plant)
        label = common(t.label() for t in targets.values())
        try:
            found = self.read(plant, run.conns)
            found.raise_bugs()
            down = sorted({host for layer, host in found.failed if (layer, host) in targets})
            if down:
                reason = f"not restored, nothing changed: {'; '.join(sorted(set(found.reasons())))}"
                run.emit("plant.preflight_failed", host=down[0], detail={"reason": reason, "hosts": down})
                return PlantResult(plant.name, "preflight_failed", label, reason)
            layers = [layer for layer in run.layers() if any(key[0] == layer.name for key in targets)]
            run.emit(
                "rollback.started", release=label, detail={"reason": "restore", "layers": [x.name for x in layers]}
            )
            results: list[CheckResult] = []
            errors = self._converge_all(run, layers, targets, found.succeeded, lambda _: steps, results, set(targets))
            if errors:
                reason = f"restore failed: {'; '.join(errors)}"
                mark_attention(self.options.command_timeout, run, set(targets), reason)
                return PlantResult(plant.name, "attention", label, reason, results)
        finally:
            run.conns.close()
        run.emit("plant.done", release=label, detail={"changed": True, "reason": "restored"})
        return PlantResult(plant.name, "updated", label, "restored", results)

    def _roll_back_to(
        self, run: PlantRun, layers: list[LayerConfig], targets: Targets, before: dict[Key, Running], steps: Steps
    ) -> PlantResult:
        label = ", ".join(sorted({t.label() for t in targets.values()}))
        run.emit("rollback.started", release=label, detail={"layers": [layer.name for layer in layers]})
        results: list[CheckResult] = []
        ordered = sorted(layers, key=run.layers().index, reverse=True)
        errors = self._converge_all(run, ordered, targets, before, lambda _: steps, results)
        if errors:
            reason = f"rollback failed: {'; '.join(errors)}"
            mark_attention(self.options.command_timeout, run, set(targets), reason)
            return PlantResult(run.plant.name, "attention", label, reason, results)
        run.emit("plant.rolled_back", release=label, detail={"reason": "requested"})
        return PlantResult(run.plant.name, "rolled_back", label, "requested", results)

    def _converge_all(
        self,
        run: PlantRun,
        layers: list[LayerConfig],
        targets: Targets,
        before: dict[Key, Running] | None,
        steps_for: Callable[[str], Steps],
        results: list[CheckResult],
        only: set[Key] | None = None,
        unsettled: set[Key] | None = None,
    ) -> list[str]:
        """Converge each layer in turn, going on past a failed one: every reachable host is put back."""
        errors: list[str] = []
        for layer in layers:
            to = common(t.label() for (name, _), t in targets.items() if name == layer.name)
            run.emit("rollback.layer", layer=layer.name, detail={"to": to})
            try:
                steps = steps_for(layer.name)
                results += converge(run, layer, targets, before, steps, "rollback", only=only, unsettled=unsettled)
            except (StepFailed, TransportError) as exc:
                errors.append(f"{layer.name}: {reason_of(exc)}")
        return errors
