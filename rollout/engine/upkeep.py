"""What the executor does around the pipeline on a plant's hosts: pruning old releases after a
deploy, marking hosts that need a person, and the commit a layer's targets came from."""

from __future__ import annotations

from rollout.config.inventory import Host
from rollout.config.models import LayerConfig
from rollout.core.steps import Key, Targets
from rollout.core.workorder import WorkOrder
from rollout.engine import layout
from rollout.engine.context import PlantRun
from rollout.engine.fanout import fan_out


def prune(run: PlantRun, order: WorkOrder, before: Targets, timeout: float) -> None:
    """Keep each layer's ``keep_releases`` newest release folders, never the new one nor the one before."""
    dirs = {lay.layer: lay.release_dir for lay in order.layers}
    for layer in run.layers():
        hosts = {h.name: h for h in run.hosts(layer)}

        def one(name: str, layer: LayerConfig = layer, hosts: dict[str, Host] = hosts) -> list[str]:
            host = hosts[name]
            previous = before[(layer.name, name)].release_dir
            protect = {dirs[layer.name]} | ({previous} if previous else set())
            step = layout.prune(run.conns.dir(host, layer), layer.keep_releases, protect, timeout)
            return layout.parse_pruned(run.conns.run(host, step).stdout)

        fan_out(list(hosts), one).or_fail(layer.name)


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
