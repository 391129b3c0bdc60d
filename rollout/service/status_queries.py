"""What runs where: as the state records it (no host asked), or asked of the hosts themselves.
Nothing here prints or exits."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rollout.config.project import Plant, Project
from rollout.core.events import Event, discard
from rollout.core.fleet import FOLDED, LayerView, fleet
from rollout.service.state import open_state
from rollout.state.journal import Journal
from rollout.transports.base import TransportError

if TYPE_CHECKING:
    from rollout.engine.executor import Executor, Options
    from rollout.engine.layout import Running

LIVE_PLANTS = 8
"""Plants asked at once by ``status --live``; each plant's own fan-out bounds its hosts, so at
most this many times ``MAX_THREADS`` connections are open together."""


@dataclass(frozen=True)
class HostStatus:
    """One (layer, host) as the host itself says (``status --live``)."""

    plant: str
    layer: str
    host: str
    running: Running | None
    error: str | None


@dataclass(frozen=True)
class RecordedStatus:
    """One (layer, host) as the state records it: the projection of deploys, rollbacks and restores."""

    plant: str
    layer: str
    host: str
    release: str | None
    """None: the state records no release on this layer."""
    commit: str | None
    since: float | None
    """When the layer was switched to ``release``."""
    condition: str
    rollout: str | None
    """The rollout or rollback that last touched the layer."""
    recorded: float | None
    """When the state last recorded or confirmed it (a switch, an outcome, a verification of this
    host); its freshness. None: never."""
    drift: str | None
    """What the host's last verification found changed, if anything."""


def recorded(project: Project, plants: list[str], journal: Journal | None = None) -> list[RecordedStatus]:
    """Every (layer, host) of the chosen plants (all when none chosen) as the state records it;
    no host is contacted."""
    chosen = [project.plant(n) for n in plants] if plants else list(project.plants.values())
    layers = [layer.name for layer in project.config.layers]
    views = fleet({p.name: layers for p in chosen}, _events(journal or open_state(project), chosen))
    rows: list[RecordedStatus] = []
    for plant in chosen:
        for layer in project.config.layers:
            view = views[plant.name].layers[layer.name]
            rows.extend(_row(plant.name, view, h.name) for h in plant.inventory.group_hosts(layer.inventory_group))
    return rows


def _events(journal: Journal, chosen: list[Plant]) -> list[Event]:
    """The events ``fleet`` folds, of the chosen plants, in ``seq`` order."""
    if len(chosen) > 50:  # one read of everything beats a query per plant
        wanted = {p.name for p in chosen}
        return [e.event for e in journal.events(kinds=FOLDED) if e.event.plant in wanted]
    found = [e for p in chosen for e in journal.events(plant=p.name, kinds=FOLDED)]
    return [e.event for e in sorted(found, key=lambda e: e.seq)]


def _row(plant: str, view: LayerView, host: str) -> RecordedStatus:
    verified = view.verified.get(host)
    # A host verified after the layer's last record confirms it more recently than the layer did.
    fresh = max((t for t in (view.recorded, verified) if t is not None), default=None)
    return RecordedStatus(
        plant,
        view.name,
        host,
        view.release,
        view.commit,
        view.since,
        view.condition,
        view.rollout,
        fresh,
        view.drift.get(host),
    )


def status(project: Project, plants: list[str], options: Options) -> list[HostStatus]:
    """What runs on every host of the chosen plants, read from the hosts themselves: up to
    ``LIVE_PLANTS`` plants at once, rows in the order of plants, layers and hosts."""
    from rollout.engine.executor import Executor  # the SSH and Ansible libraries: only when hosts are asked

    chosen = [project.plant(n) for n in plants] if plants else list(project.plants.values())
    executor = Executor(project, options, discard)
    with ThreadPoolExecutor(max_workers=min(LIVE_PLANTS, max(1, len(chosen)))) as pool:
        found = list(pool.map(lambda plant: _live(executor, plant), chosen))
    return [row for rows in found for row in rows]


def _live(executor: Executor, plant: Plant) -> list[HostStatus]:
    rows: list[HostStatus] = []
    for (layer, host), state in executor.running_each(plant).items():
        if isinstance(state, TransportError):
            rows.append(HostStatus(plant.name, layer, host, None, state.reason))
        elif isinstance(state, Exception):
            raise state
        else:
            rows.append(HostStatus(plant.name, layer, host, state, None))
    return rows
