"""The pipeline of one layer: stage, switch, restart, check, on every host that needs it.

Deploying, rolling back and re-checking all run it; a host that already runs its target is
left alone, so every step can be repeated.
"""

from __future__ import annotations

import hashlib
import shlex
import sys
from collections.abc import Callable, Iterable, Mapping

from rollout.config.inventory import Host
from rollout.config.models import Check, CommandStep, LayerConfig, PlaybookCheck, PlaybookStep
from rollout.config.models.checks import Step
from rollout.core.bundle import Bundle
from rollout.core.steps import Attempt, CheckOutcome, CheckResult, Key, Steps, Target
from rollout.engine import layout
from rollout.engine.checks import host_probe, with_retries
from rollout.engine.context import LayerRun, PlantRun
from rollout.engine.fanout import StepFailed, fan_out
from rollout.engine.layout import HostStep, Running
from rollout.engine.verify import parse_verify, verify
from rollout.transports.ansible import run_playbook
from rollout.transports.base import TransportError


def converge(
    run: PlantRun,
    layer: LayerConfig,
    targets: dict[Key, Target],
    before: dict[Key, Running] | None,
    steps: Steps,
    action: str,
    touched: set[Key] | None = None,
    only: set[Key] | None = None,
    unsettled: set[Key] | None = None,
    prune: Mapping[Key, tuple[str, ...]] | None = None,
) -> list[CheckResult]:
    """Stage, switch, restart and check ``layer`` on every host (of ``only``) that needs it.

    ``touched`` collects the hosts switched. ``unsettled`` hosts already run their target but an
    interrupted run switched them: their restart step may never have run, so it runs again.
    ``prune``: the old release folders each host's switch removes.
    """
    hosts = [h for h in run.hosts(layer) if only is None or (layer.name, h.name) in only]
    if not hosts:
        return []
    target_of = {h.name: targets[(layer.name, h.name)] for h in hosts}
    lr = LayerRun(run, layer, hosts, target_of, before or {}, steps, action, prune or {})
    drifted = _drifted(lr, hosts)
    moving = [h for h in hosts if h.name in drifted or not already(lr.running(h), lr.target_of[h.name])]
    release = lr.release()
    if any(lr.target_of[h.name].release_dir for h in moving):
        lr.emit("layer.staging", release, {"hosts": [h.name for h in moving]})
        payloads = _payloads(lr.target_of[h.name] for h in moving)
        lr.each(moving, lambda h: _stage(lr, h, payloads, h.name in drifted))
        lr.emit("layer.staged", release)
    if moving:
        if touched is not None:
            touched.update((layer.name, h.name) for h in moving)
        lr.emit("layer.activating", release, {"action": action})
        _switch(lr, moving)
        lr.emit("layer.activated", release, _provenance(lr, moving))
    settle = unsettled or set()
    live = [h for h in hosts if lr.target_of[h.name].release_dir and (h in moving or owed(lr, h, settle))]
    if layer.restart is not None and live:
        lr.emit("layer.restarting", release)
        run_step(lr, layer.restart, live, "restart")
    checked = [h for h in hosts if lr.target_of[h.name].release_dir is not None]
    if not checked or not layer.checks:
        return []
    lr.emit("layer.checking", release)
    return run_checks(lr, checked)


def owed(lr: LayerRun, host: Host, unsettled: set[Key]) -> bool:
    """The host runs its target but its restart step may never have run: a resumed run's journal
    says it switched the host, or the host itself says so (a run stopped without its journal).
    A recheck only checks."""
    running = lr.running(host)
    said = running is not None and running.restart_owed and lr.action != "recheck"
    return said or (lr.layer.name, host.name) in unsettled


def _provenance(lr: LayerRun, hosts: list[Host]) -> dict[str, object]:
    """The commit and overlay hash the switched hosts now run, when they share one: what a restore
    of a replaced host renders again (``rollout restore``)."""
    targets = [lr.target_of[h.name] for h in hosts]
    commits = {t.commit for t in targets}
    overlays = {t.bundle.overlay_hash if t.bundle else None for t in targets}
    found: dict[str, object] = {}
    if len(commits) == 1 and None not in commits:
        found["commit"] = commits.pop()
    if len(overlays) == 1 and None not in overlays:
        found["overlay_hash"] = overlays.pop()
    return found


def _drifted(lr: LayerRun, hosts: list[Host]) -> set[str]:
    """Hosts whose staged copy of their target no longer matches its manifest: staging would
    trust it, so each is named in a warning and gets a clean copy in its place."""
    timeout = lr.run.options.command_timeout

    def check(host: Host) -> str:
        target, running = lr.target_of[host.name], lr.running(host)
        if target.bundle is None or target.release_dir is None or running is None:
            return ""
        digest = hashlib.sha256(target.bundle.manifest_bytes()).hexdigest()
        if running.staged_manifests.get(target.release_dir) != digest:
            return ""  # not staged yet: staging brings a fresh copy anyway
        found = parse_verify(lr.exec(host, verify(lr.dir(host), target.release_dir, timeout)).stdout)
        return found.drift.summary() if found.drift.drifted else ""

    found = {name: what for name, what in lr.each(hosts, check).items() if what}
    for name, what in sorted(found.items()):
        folder = lr.target_of[name].release_dir
        reason = f"{name}: release folder {folder} drifted from its manifest ({what}); staging a clean copy"
        lr.run.emit("warning", layer=lr.name, host=name, release=lr.target_of[name].label(), detail={"reason": reason})
    return set(found)


def _stage(lr: LayerRun, host: Host, payloads: dict[str, bytes], drifted: bool = False) -> None:
    target = lr.target_of[host.name]
    if target.release_dir is None:
        return
    timeout = lr.run.options.command_timeout
    if target.bundle is not None:
        running = None if drifted else lr.running(host)  # None: stage whatever is there
        step = layout.stage(lr.dir(host), target.bundle, timeout, running, payloads.get(target.release_dir))
        if step is not None:
            lr.exec(host, step)
        return
    if not lr.exec(host, layout.staged_check(lr.dir(host), target.release_dir, timeout), check=False).ok:
        raise TransportError(host.name, f"release folder {target.release_dir} is no longer on the host")


def _switch(lr: LayerRun, hosts: list[Host]) -> None:
    timeout = lr.run.options.command_timeout
    removing = [h for h in hosts if lr.target_of[h.name].release_dir is None]
    switching = [h for h in hosts if lr.target_of[h.name].release_dir is not None]
    if removing and lr.layer.stop is not None:
        run_step(lr, lr.layer.stop, removing, "stop")
    lr.each(removing, lambda h: lr.exec(h, layout.deactivate(lr.dir(h), lr.record(h), timeout)))
    if not switching:
        return
    restarts = lr.layer.restart is not None
    if isinstance(lr.layer.activation, PlaybookStep):
        playbook(lr, lr.layer.activation, switching, "activation")
        lr.each(switching, lambda h: _confirm_link(lr, h))
    else:
        lr.each(
            switching,
            lambda h: lr.exec(
                h,
                layout.activate(
                    lr.dir(h), str(lr.target_of[h.name].release_dir), lr.record(h), timeout, restarts, lr.pruned(h)
                ),
            ),
        )


def _confirm_link(lr: LayerRun, host: Host) -> None:
    timeout, target = lr.run.options.command_timeout, lr.target_of[host.name]
    link = layout.parse_link(lr.exec(host, layout.link_only(lr.dir(host), timeout)).stdout)
    if link != target.release_dir:
        raise TransportError(
            host.name, f"the activation playbook left current at {link or 'nothing'}, not {target.release_dir}"
        )
    restarts = lr.layer.restart is not None
    step = layout.write_record(
        lr.dir(host), str(target.release_dir), lr.record(host), timeout, restarts, lr.pruned(host)
    )
    lr.exec(host, step)


def run_step(lr: LayerRun, step: Step, hosts: list[Host], what: str) -> None:
    """A restart or stop step: a playbook, or a command on every host holding the layer's lock."""
    settles = what == "restart"
    if isinstance(step, PlaybookStep):
        playbook(lr, step, hosts, what)
        if settles:
            timeout = lr.run.options.command_timeout
            lr.each(
                hosts, lambda h: lr.exec(h, HostStep(layout.restart_done(lr.dir(h)), timeout, "noting the restart"))
            )
        return
    assert isinstance(step, CommandStep)

    def on(host: Host) -> None:
        fields = lr.steps.fields.get((lr.name, host.name), {}).get(what)
        command = fields["command"] if fields else step.command
        directory = lr.dir(host)
        # A subshell, so that an ``exit`` of the command still lets the note of its success follow;
        # without the lock's descriptor, so that no service it starts holds the lock.
        body = f"cd {shlex.quote(directory)} && (\n{command}\n) {layout.UNLOCKED}"
        if settles:
            body += f" && {layout.restart_done(directory)}"
        script = layout.locked(directory, body, step.timeout)
        result = lr.exec(host, HostStep(script, step.timeout, f"{what} step"), check=False)
        if not result.ok:
            raise TransportError(host.name, f"{what} step exited {result.exit_code}: {result.output()}")

    lr.each(hosts, on)


def playbook(lr: LayerRun, step: PlaybookStep | PlaybookCheck, hosts: list[Host], what: str) -> None:
    """Run a playbook on ``hosts`` through ansible-runner; StepFailed naming every failed host."""
    run, target = lr.run, lr.target_of[hosts[0].name]
    result = run_playbook(
        run.project.root / step.playbook,
        run.project.root / run.plant.inventory.file,
        {h.name: _playbook_vars(h, lr.dir(h)) for h in hosts},
        {
            "rollout_plant": run.plant.name,
            "rollout_layer": lr.name,
            "rollout_release": target.release,
            "rollout_release_dir": target.release_dir,
            "rollout_commit": target.commit,
        },
        run.options.known_hosts,
        step.timeout,
    )
    if not result.ok:
        bad = ", ".join(result.failed + result.unreachable) or "?"
        summary = result.summary()
        raise StepFailed(lr.name, f"{what} playbook {step.playbook} failed on {bad} ({result.status}): {summary}")


def run_checks(lr: LayerRun, hosts: list[Host]) -> list[CheckResult]:
    """Every check of the layer in turn, on every host at once; the first check that fails fails the layer."""
    results: list[CheckResult] = []
    release, clock = lr.release(hosts), lr.run.clock
    by_name = {h.name: h for h in hosts}
    for check in lr.layer.checks:

        def attempted(host: str | None, name: str = check.name) -> Callable[[Attempt], None]:
            return lambda a: lr.run.emit(
                "check.attempt", layer=lr.name, host=host, release=release, detail={"check": name, **a.as_dict()}
            )

        if isinstance(check, PlaybookCheck):

            def probe(check: PlaybookCheck = check) -> tuple[CheckOutcome, str]:
                try:
                    playbook(lr, check, hosts, f"check {check.name}")
                except StepFailed as exc:
                    return "failed", exc.reason
                return "succeeded", "playbook passed"

            found = [with_retries(check.name, None, probe, check.retries, check.interval, attempted(None), clock)]
        else:

            def one(name: str, check: Check = check) -> CheckResult:
                host = by_name[name]
                fields = lr.steps.fields[(lr.name, name)][f"checks.{check.name}"]
                probe = host_probe(check, fields, lr.run.conns.get(host), lr.dir(host))
                return with_retries(check.name, name, probe, check.retries, check.interval, attempted(name), clock)

            found = list(fan_out(list(by_name), one).or_fail(lr.name).values())
        for result in found:
            lr.run.emit(
                "check.result",
                layer=lr.name,
                host=result.host,
                release=release,
                detail={"check": result.check, "outcome": result.outcome, "attempts": len(result.attempts)},
            )
        results += found
        failed = [r for r in found if not r.passed]
        if failed:
            where = ", ".join(f"{r.host or 'all hosts'}: {r.outcome} ({r.attempts[-1].detail})" for r in failed)
            raise StepFailed(lr.name, f"check {check.name} did not pass on {where}")
    return results


def already(running: Running | None, target: Target) -> bool:
    """The host runs ``target`` whole and needs no person."""
    return (
        running is not None
        and running.release_dir == target.release_dir
        and running.whole
        and running.attention is None
    )


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


def _payloads(targets: Iterable[Target]) -> dict[str, bytes]:
    """One tarball per distinct bundle shared by several of a layer's hosts, made once."""
    bundles: dict[str, list[Bundle]] = {}
    for target in targets:
        if target.bundle is not None and target.release_dir is not None:
            bundles.setdefault(target.release_dir, []).append(target.bundle)
    return {name: layout.archive(group[0]) for name, group in bundles.items() if len(group) > 1}
