"""Before a plant's hosts change: room on every host, and the old release's checks in the work order."""

from __future__ import annotations

from collections.abc import Mapping

from rollout.core.bundle import Bundle
from rollout.core.steps import Key, PlantResult, Steps, Targets, commits_of
from rollout.core.workorder import RenderBundles, RenderSteps, WorkOrder
from rollout.engine.context import PlantRun, common
from rollout.engine.fanout import HostResults
from rollout.engine.layout import Running
from rollout.errors import ConfigError
from rollout.transports.base import TransportError


def room(run: PlantRun, order: WorkOrder, now: dict[Key, Running]) -> str:
    """Every host's answer to the probe read with its state: writable, and room for the bundle; '' when all fit."""
    run.emit("plant.preflight")
    min_free = run.project.config.preflight.min_free_mb * 1024
    sizes = {lay.layer: lay.size for lay in order.layers}
    for layer in run.layers():
        need = 2 * sizes[layer.name] // 1024 + min_free
        for host in run.hosts(layer):
            found = now[(layer.name, host.name)].room
            where = f"{host.name} ({layer.name} at {run.conns.dir(host, layer)})"
            if found is None or not found.writable:
                return f"{where}: {found.why if found else 'no probe answer'}"
            if found.free_kib < need:
                return (
                    f"{where}: {found.free_kib} KiB free, {need} KiB needed "
                    "(twice the bundle plus preflight.min_free_mb)"
                )
    return ""


def with_old_steps(order: WorkOrder, targets: Targets, render: RenderSteps | None) -> tuple[WorkOrder, str]:
    """The order with the checks of every release in ``targets`` (what a rollback would run),
    rendering those it lacks now, before any host changes; and '' or why one cannot be had.

    A rollback to a release whose checks cannot be rendered could not be checked: found out
    before it is needed."""
    rendered: dict[str, Steps] = {}
    for commit in order.lacks(commits_of(targets)):
        labels = common(t.label() for t in targets.values() if t.commit == commit)
        if render is None:
            why = "are not in the work order"
            return order, f"the checks of {labels} (commit {commit[:12]}), which a rollback would run, {why}"
        try:
            rendered[commit] = render(commit)
        except ConfigError as exc:
            why = f"do not render: {exc}"
            return order, f"the checks of {labels} (commit {commit[:12]}), which a rollback would run, {why}"
    return (order.with_old(rendered) if rendered else order), ""


def clean_copies(run: PlantRun, order: WorkOrder, now: dict[Key, Running], render: RenderBundles | None) -> WorkOrder:
    """Hosts about to leave a release whose files changed since it was staged: each is named in
    a warning (the release a rollback returns to is not the one that was deployed), and the
    order carries that release's bundle rendered again, so a rollback stages a clean copy
    instead; where it cannot (nothing to render with, no commit recorded, a rendering that is
    not the deployed bundle because the overlays changed), the warning says so.

    ``now`` is what the plant's first read found, which hashed the release each host leaves
    (``Running.drift``, asked with the order's targets)."""
    clean: dict[str, Bundle] = {}
    rendered: dict[tuple[str, str], Mapping[str, Bundle] | str] = {}
    """(commit, release) -> its bundles, or why they do not render: each rendered once."""
    for key, state in sorted(now.items()):
        if state.drift is None or not state.drift.drifted:
            continue
        what = state.drift.summary()
        why = _render_clean(state, key[0], _memo(render, rendered), clean)
        after = "a rollback to it stages a clean copy" if not why else f"a rollback to it would not be clean: {why}"
        reason = f"{key[1]}: the release it runs, {state.release}, drifted from its manifest ({what}); {after}"
        run.emit("warning", layer=key[0], host=key[1], release=state.release, detail={"reason": reason})
    return order.with_clean(clean) if clean else order


def _memo(
    render: RenderBundles | None, known: dict[tuple[str, str], Mapping[str, Bundle] | str]
) -> RenderBundles | None:
    """``render`` remembering each answer (a ConfigError too), since several hosts and layers
    may have drifted on one release."""
    if render is None:
        return None

    def once(commit: str, release: str) -> Mapping[str, Bundle]:
        if (commit, release) not in known:
            try:
                known[(commit, release)] = render(commit, release)
            except ConfigError as exc:
                known[(commit, release)] = str(exc)
        found = known[(commit, release)]
        if isinstance(found, str):
            raise ConfigError.one("release", found, expected="a release that renders")
        return found

    return once


def _render_clean(state: Running, layer: str, render: RenderBundles | None, clean: dict[str, Bundle]) -> str:
    """Put the bundle of ``state``'s release in ``clean`` (by folder); '' or why it cannot be had."""
    if state.release_dir in clean:
        return ""
    if render is None or not state.commit or not state.release:
        return "its commit is not recorded" if render is not None else "nothing here renders it"
    try:
        bundle = render(state.commit, state.release).get(layer)
    except ConfigError as exc:
        return f"it does not render now ({exc})"
    if bundle is None or bundle.bundle_hash != state.bundle_hash:
        return "rendered now it is not the bundle that was deployed (the overlays changed since)"
    clean[str(state.release_dir)] = bundle
    return ""


def unreachable(run: PlantRun, found: HostResults[Key, Running], release: str | None) -> PlantResult:
    """Hosts that did not answer the preflight: each named with its own reason."""
    found.raise_bugs()
    errors = list(found.failed.values())
    first = errors[0]
    hosts = sorted({e.host for e in errors if isinstance(e, TransportError)})
    if len(errors) == 1 and isinstance(first, TransportError):
        run.emit("plant.preflight_failed", host=first.host, detail={"reason": first.reason})
        return PlantResult(run.plant.name, "preflight_failed", release, f"{first.host}: {first.reason}")
    reason = "; ".join(sorted(set(found.reasons())))
    host = first.host if isinstance(first, TransportError) else None
    run.emit("plant.preflight_failed", host=host, detail={"reason": reason, "hosts": hosts})
    return PlantResult(run.plant.name, "preflight_failed", release, reason)
