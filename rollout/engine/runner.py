"""The plant-runner seam: one plant's work order, executed in this process or elsewhere.

The orchestrator decides which plant goes when; a runner carries out one plant's part and
reports every step as a typed event through ``sink``. ``InProcessRunner`` runs the executor
here; the plant's agent (a later runner) runs the same work order inside the plant.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from rollout.config.project import Project
from rollout.core.bundle import Bundle
from rollout.core.events import EventSink
from rollout.engine.executor import Executor, Options, PlantResult, Steps, Target

Targets = dict[tuple[str, str], Target]
"""What each (layer, host) of a plant runs or should run."""


@dataclass(frozen=True)
class WorkOrder:
    """Everything one plant's deploy needs, rendered before any host is touched."""

    plant: str
    release: str
    commit: str | None
    bundles: dict[str, Bundle]
    """Layer -> the plant's bundle of that layer."""
    steps: Steps
    """The new release's templated steps and checks."""
    old_steps: Callable[[str | None], Steps]
    """The steps and checks of the release a host ran before, by its commit."""


class PlantRunner(ABC):
    """Carries out one plant's work order; every step is announced to ``sink`` before it is taken."""

    @abstractmethod
    def deploy(self, order: WorkOrder, before: Targets | None, sink: EventSink) -> PlantResult:
        """Take the plant to the order's release layer by layer; roll back what was done on failure.

        ``before``: what the plant ran when the rollout first reached it (a resumed run knows it)."""

    @abstractmethod
    def restore(self, order: WorkOrder, before: Targets, why: str, interrupted: bool, sink: EventSink) -> PlantResult:
        """Put every host that differs from ``before`` back to it (a wave rolled back, a resumed rollback)."""

    @abstractmethod
    def recheck(self, order: WorkOrder, sink: EventSink) -> str:
        """Run every layer's checks again on what the plant runs now; '' when all pass (a wave's bake)."""


class InProcessRunner(PlantRunner):
    """Runs the executor in this process, reaching the plant's hosts through the transports."""

    def __init__(self, project: Project, options: Options) -> None:
        self.project = project
        self.options = options

    def _executor(self, sink: EventSink) -> Executor:
        return Executor(self.project, self.options, sink)

    def deploy(self, order: WorkOrder, before: Targets | None, sink: EventSink) -> PlantResult:
        plant = self.project.plants[order.plant]
        return self._executor(sink).deploy(plant, order.bundles, order.steps, order.old_steps, before)

    def restore(self, order: WorkOrder, before: Targets, why: str, interrupted: bool, sink: EventSink) -> PlantResult:
        plant = self.project.plants[order.plant]
        return self._executor(sink).restore(plant, before, order.old_steps, why, interrupted=interrupted)

    def recheck(self, order: WorkOrder, sink: EventSink) -> str:
        return self._executor(sink).recheck(self.project.plants[order.plant], order.steps)
