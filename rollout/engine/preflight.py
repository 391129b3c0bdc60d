"""Before a plant's hosts change: room on every host, and the old release's checks in the work order."""

from __future__ import annotations

from rollout.core.steps import Key, Steps, Targets, commits_of
from rollout.core.workorder import RenderSteps, WorkOrder
from rollout.engine.context import PlantRun, common
from rollout.engine.layout import Running
from rollout.errors import ConfigError


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
