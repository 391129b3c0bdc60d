"""A person's work on an agent plant (plant IT's rollback, a restore), sent to the plant's agent
as an order.

The node has no code base, so everything is rendered here first: the release rolled back to,
or, for "each host back to what it ran before", the checks of every release the state knows
the plant ran (the hosts' own records, read on the node, say which one each host goes to)."""

from __future__ import annotations

from rollout.config.project import Project
from rollout.core.agentwork import result_from_json
from rollout.core.events import EventSink
from rollout.core.steps import PlantResult, Steps, Targets
from rollout.core.workorder import RenderSteps, WorkOrder
from rollout.errors import ConfigError
from rollout.service.agent_runner import AgentRunner, Request
from rollout.service.workorders import known_commits, render_steps, render_work
from rollout.state.journal import Journal

RECENT = 10
"""Releases of the plant whose checks go with a rollback to "what it ran before"."""


def person_runner(project: Project, journal: Journal, rid: str, operator: str) -> AgentRunner:
    """The runner of a person's work (``rid``: its record) on agent plants."""
    return AgentRunner(project, journal, rid, operator, lambda name: _renderer(project, name))


def _renderer(project: Project, plant: str) -> RenderSteps:
    return lambda commit: render_steps(project, project.plants[plant], commit)


def agent_rollback(runner: AgentRunner, plant: str, to: str | None, layers: list[str], sink: EventSink) -> PlantResult:
    """Plant IT's rollback of an agent plant, run by its agent; the result once it is in."""
    project, journal = runner.project, runner.journal
    if to is not None:
        release = project.release(to, "--to")
        order = render_work(project, release, [plant])[plant]
        return result_from_json(runner.run(order, Request("rollback", layers=tuple(layers), to_order=True), sink))
    old: dict[str, Steps] = {}
    for commit in recent_commits(journal, plant):
        try:
            old[commit] = render_steps(project, project.plants[plant], commit)
        except ConfigError:
            continue  # a host on it is refused on the node, before anything changes
    order = WorkOrder.build(plant, "previous", None, {}, Steps({}), old)
    return result_from_json(runner.run(order, Request("rollback", layers=tuple(layers)), sink))


def agent_rebuild(runner: AgentRunner, plant: str, targets: Targets, steps: Steps, sink: EventSink) -> PlantResult:
    """``rollout restore`` of an agent plant: the hosts of ``targets`` rebuilt by its agent."""
    bundles = {key[0]: t.bundle for key, t in targets.items() if t.bundle is not None}
    label = ", ".join(sorted({t.label() for t in targets.values()}))
    commit = next((t.commit for t in targets.values()), None)
    order = WorkOrder.build(plant, label, commit, bundles, steps, {})
    keys = tuple(f"{layer}/{host}" for layer, host in sorted(targets))
    return result_from_json(runner.run(order, Request("rebuild", keys=keys), sink))


def recent_commits(journal: Journal, plant: str) -> list[str]:
    """The commits of the latest rollouts that reached the plant and those its hosts last ran."""
    commits = [r.commit for r in reversed(journal.rollouts(plant)) if r.commit]
    recent = list(dict.fromkeys(commits))[:RECENT]
    return sorted(set(recent) | set(known_commits(journal, [plant]).get(plant, [])))
