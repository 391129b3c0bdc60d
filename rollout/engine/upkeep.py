"""What the executor does around the pipeline on a plant's hosts: choosing the old releases a
deploy prunes and pruning them where no switch did, marking hosts that need a person, and
the commit a layer's targets came from."""

from __future__ import annotations

from rollout.core.steps import Key, Targets
from rollout.core.workorder import WorkOrder
from rollout.engine import layout
from rollout.engine.context import PlantRun
from rollout.engine.fanout import fan_out
from rollout.engine.layout import Running


def to_prune(run: PlantRun, order: WorkOrder, now: dict[Key, Running], before: Targets) -> dict[Key, tuple[str, ...]]:
    """(layer, host) -> the release folders a deploy removes: all but each layer's
    ``keep_releases`` newest, never the new one, the one before the rollout or the one the host
    runs (``now``, read at the plant's start)."""
    dirs = {lay.layer: lay.release_dir for lay in order.layers}
    keep = {layer.name: layer.keep_releases for layer in run.layers()}
    found: dict[Key, tuple[str, ...]] = {}
    for key, state in now.items():
        protect = {dirs.get(key[0]), before[key].release_dir, state.release_dir} - {None}
        names = layout.to_prune(state.staged, keep[key[0]], {str(name) for name in protect})
        if names:
            found[key] = names
    return found


def prune(run: PlantRun, removals: dict[Key, tuple[str, ...]], now: dict[Key, Running], timeout: float) -> None:
    """Remove what ``to_prune`` chose on hosts whose switch did not already (they did not move)."""
    where = {
        (lay.name, h.name): (lay, h) for lay in run.layers() for h in run.hosts(lay) if (lay.name, h.name) in removals
    }

    def one(key: Key) -> None:
        layer, host = where[key]
        step = layout.remove_releases(run.conns.dir(host, layer), now[key].release_dir, removals[key], timeout)
        run.conns.run(host, step)

    fan_out(list(where), one).or_fail("prune")


def mark_attention(timeout: float, run: PlantRun, keys: set[Key], reason: str) -> None:
    """Record on the plant and on each of those hosts that a person is needed, and why."""
    run.emit("plant.attention", detail={"reason": reason})
    where = {
        (layer.name, host.name): (layer, host)
        for layer in run.layers()
        for host in run.hosts(layer)
        if (layer.name, host.name) in keys
    }

    def mark(key: Key) -> None:
        layer, host = where[key]
        run.conns.run(host, layout.set_attention(run.conns.dir(host, layer), reason, timeout))

    # A host that fails here may be the very reason; the event and the result still say it.
    fan_out(list(where), mark).raise_bugs()


def commit_of(targets: Targets, layer: str) -> str | None:
    commits = [t.commit for (name, _), t in targets.items() if name == layer and t.commit]
    return max(set(commits), key=commits.count) if commits else None
