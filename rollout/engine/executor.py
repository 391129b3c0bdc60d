"""The executor: the one place with side effects. Takes one plant from what it runs to a target.

Deploying and rolling back are the same pipeline, ``converge``, aimed at different
targets: for each layer, stage the target on every host, switch ``current`` atomically
(or remove it, for "nothing installed"), run the restart step, run the checks. A host
that already runs its target is left alone, so every step can be repeated.

A forward deploy that fails on a layer converges every layer it touched, in reverse
order, back to what each host ran before, runs the restart steps again and checks the
old release. If that fails too, the touched layers are marked as needing attention.
"""

from __future__ import annotations

import datetime
import getpass
import shlex
import socket
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

from rollout.config.inventory import Host
from rollout.config.models import Check, CommandStep, LayerConfig, PlaybookCheck, PlaybookStep
from rollout.config.models.checks import Step
from rollout.config.project import Plant, Project
from rollout.core.bundle import Bundle
from rollout.core.events import Event, EventKind, EventSink
from rollout.engine import layout
from rollout.engine.checks import CheckResult, host_probe, with_retries
from rollout.engine.layout import Running
from rollout.errors import ConfigError, RolloutError
from rollout.transports.ansible import run_playbook
from rollout.transports.base import Transport, TransportError
from rollout.transports.local import LocalTransport
from rollout.transports.ssh import SshTransport

T = TypeVar("T")
R = TypeVar("R")
Outcome = Literal["updated", "unchanged", "rolled_back", "preflight_failed", "attention"]
MAX_THREADS = 16


class StepFailed(RolloutError):
    """A step of one layer failed on one or more hosts."""

    def __init__(self, layer: str, reason: str) -> None:
        self.layer = layer
        self.reason = reason
        super().__init__(f"{layer}: {reason}")


@dataclass(frozen=True)
class Target:
    """What one host's layer should run: a release folder (None: nothing) and how to get it."""

    release_dir: str | None
    release: str | None = None
    commit: str | None = None
    bundle_hash: str | None = None
    bundle: Bundle | None = None
    """Needed only when the folder may be missing on the host."""

    @classmethod
    def of(cls, bundle: Bundle) -> Target:
        return cls(layout.release_dir(bundle), bundle.release_id, bundle.commit, bundle.bundle_hash, bundle)

    @classmethod
    def was(cls, running: Running) -> Target:
        return cls(running.release_dir, running.release, running.commit, running.bundle_hash)

    def label(self) -> str:
        return self.release or "nothing"


@dataclass(frozen=True)
class Steps:
    """Templated check and step fields of one release, per (layer, host)."""

    fields: dict[tuple[str, str], dict[str, dict[str, str]]]


Choose = Callable[[dict[tuple[str, str], Running]], tuple[dict[tuple[str, str], Target], Steps]]
"""Picks a rollback's targets and checks from what the hosts run."""


@dataclass
class PlantResult:
    plant: str
    outcome: Outcome
    release: str | None
    reason: str = ""
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.outcome in ("updated", "unchanged")


@dataclass(frozen=True)
class Options:
    known_hosts: Path | None
    """None: host keys are not verified (an explicit, loudly reported choice)."""
    connect_timeout: float
    command_timeout: float
    operator: str


def default_operator() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


class Connections:
    """One transport per host for the whole of a plant's work, closed at the end.

    A host that serves several layers is asked by several threads at once (one per layer):
    it still gets exactly one transport, which is safe to share (see ``Transport``)."""

    def __init__(self, project: Project, plant: Plant, options: Options) -> None:
        self.project, self.plant, self.options = project, plant, options
        self._open: dict[str, Transport] = {}
        self._guard = threading.Lock()

    def get(self, host: Host) -> Transport:
        with self._guard:
            if host.name not in self._open:
                self._open[host.name] = self._make(host)
            return self._open[host.name]

    def _make(self, host: Host) -> Transport:
        if host.connection == "local":
            return LocalTransport(host.name)
        return SshTransport(
            host.name,
            host.address,
            host.port,
            host.user,
            host.key_file,
            self.options.known_hosts,
            self.options.connect_timeout,
        )

    def root(self, host: Host) -> str:
        if host.root:
            return host.root
        if host.connection == "local":
            return str(self.project.root / self.project.config.hosts_dir / self.plant.name / host.name)
        return "/"

    def dir(self, host: Host, layer: LayerConfig) -> str:
        return layout.layer_dir(self.root(host), layer.target)

    def close(self) -> None:
        with self._guard:
            open_now, self._open = list(self._open.values()), {}
        for transport in open_now:
            transport.close()


class Executor:
    """Deploys and rolls back one plant at a time; announces every step to ``sink``."""

    def __init__(self, project: Project, options: Options, sink: EventSink) -> None:
        self.project = project
        self.options = options
        self.sink = sink
        self._written: dict[tuple[str, str, str], dict[str, object]] = {}
        """Records this executor wrote, by (plant, layer, host): newer than what it read."""

    # -- reading ---------------------------------------------------------------------

    def running(
        self, plant: Plant, conns: Connections | None = None, probe: bool = False
    ) -> dict[tuple[str, str], Running]:
        """What every host of every layer runs, asked of the hosts themselves; any unreachable host raises.

        ``probe`` asks the preflight's questions in the same round trip."""
        found = self.running_each(plant, conns, probe)
        for value in found.values():
            if isinstance(value, Exception):
                raise value
        return {key: value for key, value in found.items() if isinstance(value, Running)}

    def running_each(
        self, plant: Plant, conns: Connections | None = None, probe: bool = False
    ) -> dict[tuple[str, str], Running | Exception]:
        """Like ``running``, with the error in place of each host that did not answer."""
        own = conns is None
        conns = conns or Connections(self.project, plant, self.options)
        try:
            pairs = [(layer, host) for layer in self.layers() for host in self.hosts(plant, layer)]
            timeout = self.options.command_timeout
            results = _fan_out(
                pairs, lambda p: layout.read_running(conns.get(p[1]), conns.dir(p[1], p[0]), timeout, probe)
            )
            return {(layer.name, host.name): value for (layer, host), value in zip(pairs, results, strict=True)}
        finally:
            if own:
                conns.close()

    def layers(self) -> list[LayerConfig]:
        return list(self.project.config.layers)

    def hosts(self, plant: Plant, layer: LayerConfig) -> tuple[Host, ...]:
        return plant.inventory.group_hosts(layer.inventory_group)

    # -- deploying ---------------------------------------------------------------------

    def deploy(
        self,
        plant: Plant,
        bundles: dict[str, Bundle],
        steps: Steps,
        old_steps: Callable[[str | None], Steps],
        before: dict[tuple[str, str], Target] | None = None,
    ) -> PlantResult:
        """Take the plant to ``bundles`` layer by layer; roll back what was done on failure.

        ``old_steps(commit)`` renders the checks of the release a host ran before, for the
        checks after a rollback. ``before`` is what the plant ran before this rollout began,
        when a resumed run already knows it (its hosts may be half way by now).
        """
        release = next(iter(bundles.values())).release_id
        conns = Connections(self.project, plant, self.options)
        self._emit("plant.started", plant, release=release)
        try:
            try:
                now = self.running(plant, conns, probe=True)
            except TransportError as exc:
                self._emit("plant.preflight_failed", plant, host=exc.host, detail={"reason": exc.reason})
                return PlantResult(plant.name, "preflight_failed", release, f"{exc.host}: {exc.reason}")
            if before is None:
                before = {key: Target.was(state) for key, state in now.items()}
                self._emit("plant.before", plant, detail={"before": targets_to_json(before)})
            problem = self._preflight(plant, conns, bundles, now) or _renders(before, old_steps)
            if problem:
                self._emit("plant.preflight_failed", plant, detail={"reason": problem})
                return PlantResult(plant.name, "preflight_failed", release, problem)
            targets = {
                (layer.name, host.name): Target.of(bundles[layer.name])
                for layer in self.layers()
                for host in self.hosts(plant, layer)
            }
            changed = not all(_already(now[key], target) for key, target in targets.items())
            # Hosts an interrupted run already moved are ours to put back if this run fails.
            touched = {key for key, state in now.items() if not _already(state, before[key])}
            unsettled = set(touched)
            results: list[CheckResult] = []
            for layer in self.layers():
                try:
                    results += self.converge(
                        plant, conns, layer, targets, now, steps, touched, "deploy", unsettled=unsettled
                    )
                except StepFailed as failure:
                    self._emit(
                        "layer.failed", plant, layer=layer.name, release=release, detail={"reason": failure.reason}
                    )
                    return self._roll_back(plant, conns, before, touched, old_steps, failure, release, results)
            self._prune(plant, conns, bundles, before)
            self._emit("plant.done", plant, release=release, detail={"changed": changed})
            return PlantResult(plant.name, "updated" if changed else "unchanged", release, checks=results)
        finally:
            conns.close()

    def _roll_back(
        self,
        plant: Plant,
        conns: Connections,
        before: dict[tuple[str, str], Target],
        touched: set[tuple[str, str]],
        old_steps: Callable[[str | None], Steps],
        failure: StepFailed,
        release: str,
        results: list[CheckResult],
    ) -> PlantResult:
        self._emit(
            "rollback.started", plant, release=release, detail={"reason": failure.reason, "layers": _layers_of(touched)}
        )
        targets = {key: before[key] for key in touched}
        layers = [layer for layer in reversed(self.layers()) if any(key[0] == layer.name for key in touched)]
        errors = self._converge_all(
            plant,
            conns,
            layers,
            targets,
            None,
            lambda name: old_steps(_commit_of(targets, name)),
            results,
            only=touched,
        )
        if errors:
            reason = f"deploy failed ({failure.reason}); rollback failed too ({'; '.join(errors)})"
            self._mark_attention(plant, conns, touched, reason)
            return PlantResult(plant.name, "attention", release, reason, results)
        self._emit("plant.rolled_back", plant, release=release, detail={"reason": failure.reason})
        return PlantResult(plant.name, "rolled_back", release, failure.reason, results)

    def restore(
        self,
        plant: Plant,
        before: dict[tuple[str, str], Target],
        old_steps: Callable[[str | None], Steps],
        why: str,
        interrupted: bool = False,
    ) -> PlantResult:
        """Put every host that differs from ``before`` back to it (a wave rolled back, a resumed rollback).

        ``interrupted``: a rollback was cut short; hosts it already switched back may not have
        been restarted, so every host is restarted and checked on ``before``."""
        conns = Connections(self.project, plant, self.options)
        label = _common(t.label() for t in before.values())
        self._emit("rollback.started", plant, release=label, detail={"reason": why})
        results: list[CheckResult] = []
        try:
            found = self.running_each(plant, conns)
            differ = {
                key
                for key, state in found.items()
                if not isinstance(state, Running) or not _already(state, before[key])
            }
            scope = set(before) if interrupted else differ
            layers = [layer for layer in reversed(self.layers()) if any(key[0] == layer.name for key in scope)]
            steps_for = lambda name: old_steps(_commit_of(before, name))  # noqa: E731
            unrenderable = _renders(before, old_steps)
            if unrenderable:
                reason = f"{why}; not put back: {unrenderable}"
                self._mark_attention(plant, conns, scope, reason)
                return PlantResult(plant.name, "attention", label, reason, results)
            errors = self._converge_all(
                plant, conns, layers, before, _states(found), steps_for, results, only=scope, unsettled=scope
            )
            if errors:
                reason = f"{why}; putting it back failed ({'; '.join(errors)})"
                self._mark_attention(plant, conns, differ, reason)
                return PlantResult(plant.name, "attention", label, reason, results)
        finally:
            conns.close()
        self._emit("plant.rolled_back", plant, release=label, detail={"reason": why})
        return PlantResult(plant.name, "rolled_back", label, why, results)

    def recheck(self, plant: Plant, steps: Steps) -> str:
        """Run every layer's checks again on what the plant runs now (a wave's bake); '' when all pass."""
        conns = Connections(self.project, plant, self.options)
        try:
            now = self.running(plant, conns)
            targets = {key: Target.was(state) for key, state in now.items()}
            for layer in self.layers():
                self.converge(plant, conns, layer, targets, now, steps, None, "recheck")
        except (StepFailed, TransportError) as exc:
            return _reason(exc)
        finally:
            conns.close()
        return ""

    def rollback(self, plant: Plant, layers: list[LayerConfig], choose: Choose) -> PlantResult:
        """Plant IT's rollback: read every host of ``layers``, let ``choose`` pick targets and checks
        from what they run, then converge the layers top first; a failure needs a person.

        A host that does not answer stops it before anything changes (``preflight_failed``);
        ``choose`` may raise ConfigError (nothing to go back to), also before anything changes."""
        conns = Connections(self.project, plant, self.options)
        try:
            names = {layer.name for layer in layers}
            found = {key: v for key, v in self.running_each(plant, conns).items() if key[0] in names}
            down = _unreachable(found)
            if down:
                hosts = sorted({host for _, host in down})
                reason = f"not rolled back, nothing changed: {'; '.join(sorted(set(down.values())))}"
                self._emit("plant.preflight_failed", plant, host=hosts[0], detail={"reason": reason, "hosts": hosts})
                return PlantResult(plant.name, "preflight_failed", None, reason)
            before = _states(found)
            targets, steps = choose(before)
            return self._roll_back_to(plant, conns, layers, targets, before, steps)
        finally:
            conns.close()

    def _roll_back_to(
        self,
        plant: Plant,
        conns: Connections,
        layers: list[LayerConfig],
        targets: dict[tuple[str, str], Target],
        before: dict[tuple[str, str], Running],
        steps: Steps,
    ) -> PlantResult:
        label = ", ".join(sorted({t.label() for t in targets.values()}))
        self._emit("rollback.started", plant, release=label, detail={"layers": [layer.name for layer in layers]})
        results: list[CheckResult] = []
        ordered = sorted(layers, key=self.layers().index, reverse=True)
        errors = self._converge_all(plant, conns, ordered, targets, before, lambda _: steps, results)
        if errors:
            reason = f"rollback failed: {'; '.join(errors)}"
            self._mark_attention(plant, conns, set(targets), reason)
            return PlantResult(plant.name, "attention", label, reason, results)
        self._emit("plant.rolled_back", plant, release=label, detail={"reason": "requested"})
        return PlantResult(plant.name, "rolled_back", label, "requested", results)

    def _converge_all(
        self,
        plant: Plant,
        conns: Connections,
        layers: list[LayerConfig],
        targets: dict[tuple[str, str], Target],
        before: dict[tuple[str, str], Running] | None,
        steps_for: Callable[[str], Steps],
        results: list[CheckResult],
        only: set[tuple[str, str]] | None = None,
        unsettled: set[tuple[str, str]] | None = None,
    ) -> list[str]:
        """Converge each layer in turn, going on past a failed one: every reachable host is put back."""
        errors: list[str] = []
        for layer in layers:
            self._emit("rollback.layer", plant, layer=layer.name, detail={"to": _labels(targets, layer.name)})
            try:
                steps = steps_for(layer.name)
                results += self.converge(
                    plant, conns, layer, targets, before, steps, None, "rollback", only=only, unsettled=unsettled
                )
            except (StepFailed, TransportError) as exc:
                errors.append(f"{layer.name}: {_reason(exc)}")
        return errors

    # -- the pipeline ------------------------------------------------------------------

    def converge(
        self,
        plant: Plant,
        conns: Connections,
        layer: LayerConfig,
        targets: dict[tuple[str, str], Target],
        before: dict[tuple[str, str], Running] | None,
        steps: Steps,
        touched: set[tuple[str, str]] | None,
        action: str,
        only: set[tuple[str, str]] | None = None,
        unsettled: set[tuple[str, str]] | None = None,
    ) -> list[CheckResult]:
        """Stage, switch, restart and check one layer on every host that needs it.

        ``unsettled`` hosts already run their target but an interrupted run switched them:
        their restart step may never have run, so it runs again.
        """
        hosts = [h for h in self.hosts(plant, layer) if only is None or (layer.name, h.name) in only]
        if not hosts:
            return []
        now = before or {}
        moving = [h for h in hosts if not _already(now.get((layer.name, h.name)), targets[(layer.name, h.name)])]
        target_of = {h.name: targets[(layer.name, h.name)] for h in hosts}
        release = _common(t.label() for t in target_of.values())
        if any(target_of[h.name].release_dir for h in moving):
            names = [h.name for h in moving]
            self._emit("layer.staging", plant, layer=layer.name, release=release, detail={"hosts": names})
            payloads = _payloads(target_of[h.name] for h in moving)
            self._each(
                layer,
                moving,
                lambda h: self._stage(conns, h, layer, target_of[h.name], now.get((layer.name, h.name)), payloads),
            )
            self._emit("layer.staged", plant, layer=layer.name, release=release)
        if moving:
            if touched is not None:
                touched.update((layer.name, h.name) for h in moving)
            self._emit("layer.activating", plant, layer=layer.name, release=release, detail={"action": action})
            self._switch(plant, conns, layer, moving, target_of, now, action, steps)
            self._emit("layer.activated", plant, layer=layer.name, release=release)
        settle = unsettled or set()
        live = [h for h in hosts if target_of[h.name].release_dir and (h in moving or (layer.name, h.name) in settle)]
        if layer.restart is not None and live:
            self._emit("layer.restarting", plant, layer=layer.name, release=release)
            self._run_step(plant, conns, layer, layer.restart, live, target_of, steps, "restart")
        checked = [h for h in hosts if target_of[h.name].release_dir is not None]
        if not checked or not layer.checks:
            return []
        self._emit("layer.checking", plant, layer=layer.name, release=release)
        return self._checks(plant, conns, layer, checked, target_of, steps)

    def _stage(
        self,
        conns: Connections,
        host: Host,
        layer: LayerConfig,
        target: Target,
        running: Running | None,
        payloads: dict[str, bytes],
    ) -> None:
        if target.release_dir is None:
            return
        transport, directory = conns.get(host), conns.dir(host, layer)
        if target.bundle is not None:
            payload = payloads.get(target.release_dir)
            layout.stage(transport, directory, target.bundle, self.options.command_timeout, running, payload)
            return
        script = f"test -f {shlex.quote(directory)}/releases/{shlex.quote(target.release_dir)}/{layout.MANIFEST_NAME}"
        if not transport.run(script, self.options.command_timeout).ok:
            raise TransportError(host.name, f"release folder {target.release_dir} is no longer on the host")

    def _switch(
        self,
        plant: Plant,
        conns: Connections,
        layer: LayerConfig,
        hosts: list[Host],
        target_of: dict[str, Target],
        now: dict[tuple[str, str], Running],
        action: str,
        steps: Steps,
    ) -> None:
        removing = [h for h in hosts if target_of[h.name].release_dir is None]
        switching = [h for h in hosts if target_of[h.name].release_dir is not None]
        if removing and layer.stop is not None:
            self._run_step(plant, conns, layer, layer.stop, removing, target_of, steps, "stop")
        self._each(
            layer,
            removing,
            lambda h: layout.deactivate(
                conns.get(h),
                conns.dir(h, layer),
                self._record(plant, layer, h, target_of[h.name], now, action),
                self.options.command_timeout,
            ),
        )
        if not switching:
            return
        if isinstance(layer.activation, PlaybookStep):
            self._playbook(plant, conns, layer, layer.activation, switching, target_of, "activation")
            self._each(
                layer, switching, lambda h: self._confirm_link(conns, h, layer, target_of[h.name], plant, now, action)
            )
        else:
            self._each(
                layer,
                switching,
                lambda h: layout.activate(
                    conns.get(h),
                    conns.dir(h, layer),
                    str(target_of[h.name].release_dir),
                    self._record(plant, layer, h, target_of[h.name], now, action),
                    self.options.command_timeout,
                ),
            )

    def _confirm_link(
        self,
        conns: Connections,
        host: Host,
        layer: LayerConfig,
        target: Target,
        plant: Plant,
        now: dict[tuple[str, str], Running],
        action: str,
    ) -> None:
        transport, directory = conns.get(host), conns.dir(host, layer)
        link = layout.link_only(transport, directory, self.options.command_timeout)
        if link != target.release_dir:
            raise TransportError(
                host.name, f"the activation playbook left current at {link or 'nothing'}, not {target.release_dir}"
            )
        layout.write_record(
            transport, directory, self._record(plant, layer, host, target, now, action), self.options.command_timeout
        )

    def _record(
        self,
        plant: Plant,
        layer: LayerConfig,
        host: Host,
        target: Target,
        now: dict[tuple[str, str], Running],
        action: str,
    ) -> dict[str, object]:
        """The host's record for ``target``; kept to give the next switch of that host its history."""
        key = (plant.name, layer.name, host.name)
        running = now.get((layer.name, host.name))
        current = self._written.get(key) or (running.record if running and running.release_dir else None)
        history = _history(current, target)
        record: dict[str, object] = {
            "plant": plant.name,
            "layer": layer.name,
            "host": host.name,
            "release": target.release,
            "commit": target.commit,
            "bundle_hash": target.bundle_hash,
            "release_dir": target.release_dir,
            "action": action,
            "at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "by": self.options.operator,
            "previous": history[0] if history else None,
            "history": history,
        }
        self._written[key] = record
        return record

    def _run_step(
        self,
        plant: Plant,
        conns: Connections,
        layer: LayerConfig,
        step: Step,
        hosts: list[Host],
        target_of: dict[str, Target],
        steps: Steps | None,
        what: str,
    ) -> None:
        if isinstance(step, PlaybookStep):
            self._playbook(plant, conns, layer, step, hosts, target_of, what)
            return
        assert isinstance(step, CommandStep)

        def run(host: Host) -> None:
            fields = steps.fields.get((layer.name, host.name), {}).get(what) if steps else None
            command = fields["command"] if fields else step.command
            directory = conns.dir(host, layer)
            script = layout.locked(directory, f"cd {shlex.quote(directory)} && {command}", step.timeout)
            result = conns.get(host).run(script, step.timeout)
            if not result.ok:
                raise TransportError(host.name, f"{what} step exited {result.exit_code}: {result.output()}")

        self._each(layer, hosts, run)

    def _playbook(
        self,
        plant: Plant,
        conns: Connections,
        layer: LayerConfig,
        step: PlaybookStep | PlaybookCheck,
        hosts: list[Host],
        target_of: dict[str, Target],
        what: str,
    ) -> None:
        target = target_of[hosts[0].name]
        result = run_playbook(
            self.project.root / step.playbook,
            self.project.root / plant.inventory.file,
            {h.name: _playbook_vars(h, conns.dir(h, layer)) for h in hosts},
            {
                "rollout_plant": plant.name,
                "rollout_layer": layer.name,
                "rollout_release": target.release,
                "rollout_release_dir": target.release_dir,
                "rollout_commit": target.commit,
            },
            self.options.known_hosts,
            step.timeout,
        )
        if not result.ok:
            bad = ", ".join(result.failed + result.unreachable) or "?"
            summary = result.summary()
            raise StepFailed(
                layer.name, f"{what} playbook {step.playbook} failed on {bad} ({result.status}): {summary}"
            )

    def _checks(
        self,
        plant: Plant,
        conns: Connections,
        layer: LayerConfig,
        hosts: list[Host],
        target_of: dict[str, Target],
        steps: Steps,
    ) -> list[CheckResult]:
        results: list[CheckResult] = []
        release = _common(target_of[h.name].label() for h in hosts)
        for check in layer.checks:

            def attempt_event(host: str | None, name: str = check.name) -> Callable[..., None]:
                return lambda a: self._emit(
                    "check.attempt",
                    plant,
                    layer=layer.name,
                    host=host,
                    release=release,
                    detail={"check": name, **a.as_dict()},
                )

            if isinstance(check, PlaybookCheck):

                def probe(check: PlaybookCheck = check) -> tuple[Literal["succeeded", "failed", "inconclusive"], str]:
                    try:
                        self._playbook(plant, conns, layer, check, hosts, target_of, f"check {check.name}")
                    except StepFailed as exc:
                        return "failed", exc.reason
                    return "succeeded", "playbook passed"

                found = [with_retries(check.name, None, probe, check.retries, check.interval, attempt_event(None))]
            else:

                def one(host: Host, check: Check = check) -> CheckResult:
                    fields = steps.fields[(layer.name, host.name)][f"checks.{check.name}"]
                    probe = host_probe(check, fields, conns.get(host), conns.dir(host, layer))
                    return with_retries(
                        check.name, host.name, probe, check.retries, check.interval, attempt_event(host.name)
                    )

                outcomes = _fan_out(hosts, one)
                for outcome in outcomes:
                    if isinstance(outcome, Exception):
                        raise outcome
                found = [r for r in outcomes if isinstance(r, CheckResult)]
            for result in found:
                self._emit(
                    "check.result",
                    plant,
                    layer=layer.name,
                    host=result.host,
                    release=release,
                    detail={"check": result.check, "outcome": result.outcome, "attempts": len(result.attempts)},
                )
            results += found
            failed = [r for r in found if not r.passed]
            if failed:
                where = ", ".join(f"{r.host or 'all hosts'}: {r.outcome} ({r.attempts[-1].detail})" for r in failed)
                raise StepFailed(layer.name, f"check {check.name} did not pass on {where}")
        return results

    # -- around the pipeline -----------------------------------------------------------

    def _preflight(
        self, plant: Plant, conns: Connections, bundles: dict[str, Bundle], now: dict[tuple[str, str], Running]
    ) -> str:
        """Every host's answer to the probe read with its state: writable, and room for the bundle."""
        self._emit("plant.preflight", plant)
        min_free = self.project.config.preflight.min_free_mb * 1024
        for layer in self.layers():
            need = 2 * sum(len(f.content) for f in bundles[layer.name].files) // 1024 + min_free
            for host in self.hosts(plant, layer):
                room = now[(layer.name, host.name)].room
                where = f"{host.name} ({layer.name} at {conns.dir(host, layer)})"
                if room is None or not room.writable:
                    return f"{where}: {room.why if room else 'no probe answer'}"
                if room.free_kib < need:
                    return (
                        f"{where}: {room.free_kib} KiB free, {need} KiB needed "
                        "(twice the bundle plus preflight.min_free_mb)"
                    )
        return ""

    def _prune(
        self, plant: Plant, conns: Connections, bundles: dict[str, Bundle], before: dict[tuple[str, str], Target]
    ) -> None:
        for layer in self.layers():
            keep = layer.keep_releases

            def prune(host: Host, layer: LayerConfig = layer, keep: int = keep) -> list[str]:
                previous = before[(layer.name, host.name)].release_dir
                protect = {layout.release_dir(bundles[layer.name])} | ({previous} if previous else set())
                return layout.prune(
                    conns.get(host), conns.dir(host, layer), keep, protect, self.options.command_timeout
                )

            self._each(layer, list(self.hosts(plant, layer)), prune)

    def _mark_attention(self, plant: Plant, conns: Connections, keys: set[tuple[str, str]], reason: str) -> None:
        self._emit("plant.attention", plant, detail={"reason": reason})
        for layer in self.layers():
            for host in self.hosts(plant, layer):
                if (layer.name, host.name) in keys:
                    try:
                        layout.set_attention(
                            conns.get(host), conns.dir(host, layer), reason, self.options.command_timeout
                        )
                    except TransportError:
                        pass  # the host may be the very reason; the event and the result still say it

    def _each(self, layer: LayerConfig, hosts: list[Host], action: Callable[[Host], object]) -> None:
        """Run ``action`` on every host in parallel; any failure fails the layer, naming every host."""
        errors = [(h, r) for h, r in zip(hosts, _fan_out(hosts, action), strict=True) if isinstance(r, BaseException)]
        for _, error in errors:
            if not isinstance(error, (TransportError, StepFailed)):
                raise error
        if errors:
            raise StepFailed(layer.name, "; ".join(_reason(e) for _, e in errors))

    def _emit(
        self,
        kind: EventKind,
        plant: Plant,
        layer: str | None = None,
        host: str | None = None,
        release: str | None = None,
        detail: dict[str, object] | None = None,
    ) -> None:
        self.sink(Event(kind, plant.name, layer, host, release, detail or {}))


def targets_to_json(targets: dict[tuple[str, str], Target]) -> dict[str, dict[str, str | None]]:
    return {
        f"{layer}/{host}": {
            "release_dir": t.release_dir,
            "release": t.release,
            "commit": t.commit,
            "bundle_hash": t.bundle_hash,
        }
        for (layer, host), t in sorted(targets.items())
    }


def targets_from_json(data: dict[str, dict[str, str | None]]) -> dict[tuple[str, str], Target]:
    out: dict[tuple[str, str], Target] = {}
    for key, value in data.items():
        layer, host = key.split("/", 1)
        out[(layer, host)] = Target(
            value.get("release_dir"), value.get("release"), value.get("commit"), value.get("bundle_hash")
        )
    return out


def _playbook_vars(host: Host, directory: str) -> dict[str, object]:
    """Per-host variables laid over the plant's inventory: where the layer is, and how to reach
    the host as rollout does (a rehearsal makes every host local)."""
    found: dict[str, object] = {
        "rollout_target": directory,
        "ansible_connection": host.connection,
        "ansible_host": host.address,
    }
    if host.connection == "local" and "ansible_python_interpreter" not in host.vars:
        found["ansible_python_interpreter"] = sys.executable  # this machine: the interpreter running rollout
    return found


def _renders(targets: dict[tuple[str, str], Target], steps_of: Callable[[str | None], Steps]) -> str:
    """'' when the checks of every release in ``targets`` render; else why not. A rollback to a
    release whose checks cannot be rendered could not be checked: found out before it is needed."""
    for commit in sorted({t.commit for t in targets.values() if t.release_dir and t.commit}):
        try:
            steps_of(commit)
        except ConfigError as exc:
            labels = _common(t.label() for t in targets.values() if t.commit == commit)
            return f"the checks of {labels} (commit {commit[:12]}), which a rollback would run, do not render: {exc}"
    return ""


HISTORY = 10
"""Earlier releases a host's record remembers."""
_SUMMARY = ("release", "release_dir", "commit", "bundle_hash")


def _history(current: Mapping[str, object] | None, target: Target) -> list[dict[str, object]]:
    """What the host ran before ``target``, latest first. A switch pushes the release it leaves;
    going back to the latest of them pops it, so a host rolled back still knows what came before
    (plant IT can go back again)."""
    if current is None or not current.get("release_dir"):
        return []
    past = current.get("history")
    if not isinstance(past, list):  # records written before histories: their one 'previous'
        previous = current.get("previous")
        past = [previous] if isinstance(previous, dict) else []
    if current.get("release_dir") == target.release_dir:
        return list(past)
    if past and isinstance(past[0], dict) and past[0].get("release_dir") == target.release_dir:
        return list(past[1:])
    return [{k: current.get(k) for k in _SUMMARY}, *past][:HISTORY]


def _unreachable(found: dict[tuple[str, str], Running | Exception]) -> dict[tuple[str, str], str]:
    """Why each host that did not answer did not; anything but a transport failure is a bug, raised."""
    down: dict[tuple[str, str], str] = {}
    for key, value in found.items():
        if isinstance(value, TransportError):
            down[key] = str(value)
        elif isinstance(value, Exception):
            raise value
    return down


def _states(found: dict[tuple[str, str], Running | Exception]) -> dict[tuple[str, str], Running]:
    return {key: value for key, value in found.items() if isinstance(value, Running)}


def _payloads(targets: Iterable[Target]) -> dict[str, bytes]:
    """One tarball per distinct bundle shared by several of a layer's hosts, made once."""
    bundles: dict[str, list[Bundle]] = {}
    for target in targets:
        if target.bundle is not None and target.release_dir is not None:
            bundles.setdefault(target.release_dir, []).append(target.bundle)
    return {name: layout.archive(group[0]) for name, group in bundles.items() if len(group) > 1}


def _fan_out(items: list[T], action: Callable[[T], R]) -> list[R | Exception]:
    """Results in order; an exception stands in for the result of the item that raised it."""
    if len(items) <= 1:
        return [_capture(action, item) for item in items]
    with ThreadPoolExecutor(max_workers=min(MAX_THREADS, len(items))) as pool:
        return list(pool.map(lambda item: _capture(action, item), items))


def _capture(action: Callable[[T], R], item: T) -> R | Exception:
    try:
        return action(item)
    except Exception as exc:  # handed back as the item's result, re-raised by the caller if unexpected
        return exc


def _already(running: Running | None, target: Target) -> bool:
    return (
        running is not None
        and running.release_dir == target.release_dir
        and running.whole
        and running.attention is None
    )


def _common(labels: Iterable[str]) -> str:
    found = sorted(set(labels))
    return found[0] if len(found) == 1 else ", ".join(found)


def _labels(targets: dict[tuple[str, str], Target], layer: str) -> str:
    return _common(t.label() for (name, _), t in targets.items() if name == layer)


def _commit_of(targets: dict[tuple[str, str], Target], layer: str) -> str | None:
    commits = [t.commit for (name, _), t in targets.items() if name == layer and t.commit]
    return max(set(commits), key=commits.count) if commits else None


def _layers_of(keys: set[tuple[str, str]]) -> list[str]:
    return sorted({layer for layer, _ in keys})


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TransportError):
        return str(exc)
    if isinstance(exc, StepFailed):
        return exc.reason
    return f"{type(exc).__name__}: {exc}"
