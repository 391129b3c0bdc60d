"""Which runner runs a plant: the executor in this process (``execution: direct``) or the plant's
agent by way of the state (``execution: agent``). One rollout may hold plants of both kinds."""

from __future__ import annotations

from rollout.config.project import Plant, Project
from rollout.core.clock import Clock
from rollout.core.events import EventSink
from rollout.core.steps import PlantResult, Targets
from rollout.core.workorder import WorkOrder
from rollout.engine.connections import Options
from rollout.engine.runner import InProcessRunner, PlantRunner
from rollout.errors import ConfigError
from rollout.service.agent_runner import AgentRunner
from rollout.state.journal import Journal


def is_agent_plant(project: Project, plant: str) -> bool:
    return project.plants[plant].config.execution == "agent"


def reachable_plants(project: Project, plants: list[str], what: str) -> list[Plant]:
    """The chosen plants (all when none) whose hosts the centre reaches itself: an agent plant named
    is refused (its hosts are reached only by its agent), and left out of "all"."""
    for name in plants:
        if is_agent_plant(project, project.plant(name).name):
            raise ConfigError.one(
                "--plant", f"{name} is an agent plant: the centre does not reach its hosts, so it cannot {what}",
                expected="a plant with execution: direct (an agent plant's deploys and rollbacks report its hosts)",
            )  # fmt: skip
    chosen = [project.plant(n) for n in plants] if plants else list(project.plants.values())
    return [p for p in chosen if not is_agent_plant(project, p.name)]


class SplitRunner(PlantRunner):
    """Each plant to the runner of its execution mode."""

    def __init__(self, project: Project, direct: PlantRunner, agent: PlantRunner) -> None:
        self.project, self.direct, self.agent = project, direct, agent

    def _of(self, plant: str) -> PlantRunner:
        return self.agent if is_agent_plant(self.project, plant) else self.direct

    def deploy(self, order: WorkOrder, before: Targets | None, sink: EventSink) -> PlantResult:
        return self._of(order.plant).deploy(order, before, sink)

    def restore(self, order: WorkOrder, before: Targets, why: str, interrupted: bool, sink: EventSink) -> PlantResult:
        return self._of(order.plant).restore(order, before, why, interrupted, sink)

    def recheck(self, order: WorkOrder, sink: EventSink) -> str:
        return self._of(order.plant).recheck(order, sink)


def runner_for(project: Project, journal: Journal, rollout: str, options: Options, clock: Clock) -> PlantRunner:
    """The runner of one rollout: in-process alone when no plant of the project has an agent."""
    direct = InProcessRunner(project, options, clock)
    if not any(is_agent_plant(project, name) for name in project.plants):
        return direct
    return SplitRunner(project, direct, AgentRunner(project, journal, rollout, options.operator, direct.render))
