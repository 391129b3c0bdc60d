"""What runs where, asked of the hosts themselves. Nothing here prints or exits."""

from __future__ import annotations

from dataclasses import dataclass

from rollout.config.project import Project
from rollout.core.events import discard
from rollout.engine.executor import Executor, Options
from rollout.engine.layout import Running
from rollout.transports.base import TransportError


@dataclass(frozen=True)
class HostStatus:
    plant: str
    layer: str
    host: str
    running: Running | None
    error: str | None


def status(project: Project, plants: list[str], options: Options) -> list[HostStatus]:
    """What runs on every host of the chosen plants, read from the hosts themselves."""
    chosen = [project.plant(n) for n in plants] if plants else list(project.plants.values())
    executor = Executor(project, options, discard)
    rows: list[HostStatus] = []
    for plant in chosen:
        for (layer, host), state in executor.running_each(plant).items():
            if isinstance(state, TransportError):
                rows.append(HostStatus(plant.name, layer, host, None, state.reason))
            elif isinstance(state, Exception):
                raise state
            else:
                rows.append(HostStatus(plant.name, layer, host, state, None))
    return rows
