"""The plant-runner seam: one plant's work order, executed in this process or elsewhere.

The orchestrator decides which plant goes when; a runner carries out one plant's part and
reports every step as a typed event through ``sink``. ``InProcessRunner`` runs the executor
here; the plant's agent (a later runner) runs the same work order inside the plant.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import replace

from rollout.config.codebase import Release
from rollout.config.project import Project
from rollout.core.bundle import Bundle
from rollout.core.clock import Clock, SystemClock
from rollout.core.events import EventSink
from rollout.core.render import Renderer
from rollout.core.steps import PlantResult, Steps, Targets
from rollout.core.workorder import RenderBundles, RenderSteps, WorkOrder
from rollout.engine.connections import Options
from rollout.engine.executor import Executor

__all__ = ["InProcessRunner", "PlantRunner", "Targets", "WorkOrder"]


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
    """Runs the executor in this process, reaching the plant's hosts through the transports.

    An older release the order lacks is rendered from the code base at preflight, before any
    host changes, and kept with the plant's order: the rollback in the middle of a deploy and
    the put-back after a bake use what the order carries, with no git read."""

    def __init__(self, project: Project, options: Options, clock: Clock | None = None) -> None:
        self.project = project
        self.options = options
        self.clock = clock or SystemClock()
        self._orders: dict[tuple[str, str], WorkOrder] = {}
        self._releases: dict[str, Release] = {}
        """Older releases by commit: each is read from git once, whatever the plants."""
        """The orders as completed at preflight, by (plant, release)."""
        self._guard = threading.Lock()

    def _executor(self, sink: EventSink) -> Executor:
        return Executor(self.project, self.options, sink, self.clock)

    def _completed(self, order: WorkOrder) -> WorkOrder:
        with self._guard:
            known = self._orders.get((order.plant, order.release))
        if known is None or known.lacks(list(order.old_steps)):
            return order
        # the stamps are what the state says now, newer than those of the order kept
        return known.knowing(order.asset_stamps)

    def render(self, plant: str) -> RenderSteps:
        """The checks of the release at a commit, rendered from the code base (at preflight only)."""
        found = self.project.plants[plant]
        return lambda commit: Steps(Renderer(self.project, self._release(commit)).render_steps(found))

    def _release(self, commit: str) -> Release:
        with self._guard:
            known = self._releases.get(commit)
        if known is None:
            known = self.project.release(commit)
            with self._guard:
                known = self._releases.setdefault(commit, known)
        return known

    def bundles(self, plant: str) -> RenderBundles:
        """The bundles of the release at a commit, under its own name (at preflight only)."""
        found = self.project.plants[plant]

        def render(commit: str, release: str) -> dict[str, Bundle]:
            renderer = Renderer(self.project, replace(self._release(commit), id=release))
            return {b.layer: b for b in renderer.render_plant(found)}

        return render

    def deploy(self, order: WorkOrder, before: Targets | None, sink: EventSink) -> PlantResult:
        executor, plant = self._executor(sink), order.plant
        return executor.deploy(self._completed(order), before, self.render(plant), self._keep, self.bundles(plant))

    def restore(self, order: WorkOrder, before: Targets, why: str, interrupted: bool, sink: EventSink) -> PlantResult:
        executor = self._executor(sink)
        return executor.restore(self._completed(order), before, why, interrupted, self.render(order.plant), self._keep)

    def recheck(self, order: WorkOrder, sink: EventSink) -> str:
        return self._executor(sink).recheck(self.project.plants[order.plant], order.new_steps())

    def _keep(self, order: WorkOrder) -> None:
        with self._guard:
            self._orders[(order.plant, order.release)] = order
