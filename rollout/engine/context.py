"""What one plant's run shares (``PlantRun``) and what one layer's converge works on (``LayerRun``).

They replace the long parameter lists: every step of the pipeline takes the one context."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from rollout.config.inventory import Host
from rollout.config.models import LayerConfig
from rollout.config.project import Plant, Project
from rollout.core.clock import Clock
from rollout.core.events import Event, EventKind, EventSink
from rollout.core.steps import Key, Steps, Target
from rollout.engine.connections import Connections, Options
from rollout.engine.fanout import fan_out
from rollout.engine.layout import HostStep, Running
from rollout.engine.records import Records
from rollout.transports.base import CommandResult

R = TypeVar("R")


@dataclass(frozen=True)
class PlantRun:
    """One plant's run: its hosts' connections, who acts, the clock, where events go."""

    project: Project
    plant: Plant
    conns: Connections
    options: Options
    records: Records
    clock: Clock
    sink: EventSink

    def layers(self) -> list[LayerConfig]:
        return list(self.project.config.layers)

    def hosts(self, layer: LayerConfig) -> tuple[Host, ...]:
        return self.plant.inventory.group_hosts(layer.inventory_group)

    def keys(self) -> list[Key]:
        return [(layer.name, host.name) for layer in self.layers() for host in self.hosts(layer)]

    def emit(
        self,
        kind: EventKind,
        layer: str | None = None,
        host: str | None = None,
        release: str | None = None,
        detail: dict[str, object] | None = None,
    ) -> None:
        self.sink(Event(kind, self.plant.name, layer, host, release, detail or {}))


@dataclass(frozen=True)
class LayerRun:
    """One layer's converge: the hosts in scope, their targets, what they ran, the steps to run, why."""

    run: PlantRun
    layer: LayerConfig
    hosts: list[Host]
    target_of: dict[str, Target]
    now: dict[Key, Running]
    """What the hosts said at the start (a host not asked: nothing known)."""
    steps: Steps
    action: str
    prune: Mapping[Key, tuple[str, ...]]
    """(layer, host) -> old release folders its switch removes (a deploy's, ``layout.to_prune``)."""

    @property
    def name(self) -> str:
        return self.layer.name

    def release(self, hosts: Iterable[Host] | None = None) -> str:
        """The label of what ``hosts`` (default: all in scope) go to, for events."""
        return common(self.target_of[h.name].label() for h in (self.hosts if hosts is None else hosts))

    def running(self, host: Host) -> Running | None:
        return self.now.get((self.layer.name, host.name))

    def dir(self, host: Host) -> str:
        return self.run.conns.dir(host, self.layer)

    def exec(self, host: Host, step: HostStep, check: bool = True) -> CommandResult:
        return self.run.conns.run(host, step, check)

    def each(self, hosts: Sequence[Host], action: Callable[[Host], R]) -> dict[str, R]:
        """``action`` on every host at once (by host name); any failure fails the layer, naming every failed host."""
        by_name = {h.name: h for h in hosts}
        return fan_out(list(by_name), lambda name: action(by_name[name])).or_fail(self.layer.name)

    def pruned(self, host: Host) -> tuple[str, ...]:
        return self.prune.get((self.layer.name, host.name), ())

    def record(self, host: Host) -> dict[str, object]:
        return self.run.records.make(
            self.run.plant.name, self.layer.name, host.name, self.target_of[host.name], self.running(host), self.action
        )

    def emit(self, kind: EventKind, release: str | None = None, detail: dict[str, object] | None = None) -> None:
        self.run.emit(kind, layer=self.layer.name, release=release, detail=detail)


def common(labels: Iterable[str]) -> str:
    """One label, or all of them in order."""
    found = sorted(set(labels))
    return found[0] if len(found) == 1 else ", ".join(found)
