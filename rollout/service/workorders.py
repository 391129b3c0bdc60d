"""Everything a plant's deploy needs, rendered before any host is touched. Nothing here prints or exits."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from rollout.config.codebase import Release
from rollout.config.project import Plant, Project
from rollout.core.render import Renderer
from rollout.core.steps import Steps
from rollout.core.workorder import WorkOrder
from rollout.errors import ConfigError, Problem
from rollout.state.journal import Journal


def render_steps(project: Project, plant: Plant, commit: str) -> Steps:
    """The steps and checks of the release at ``commit`` for ``plant``, from the code base (raises ConfigError)."""
    return Steps(Renderer(project, project.release(commit)).render_steps(plant))


def render_work(
    project: Project, release: Release, plants: list[str], known: Mapping[str, Collection[str]] | None = None
) -> dict[str, WorkOrder]:
    """Render every plant of the rollout up front: bad input stops it before any host is touched.

    ``known``: plant -> commits the state says the plant's hosts ran; their steps and checks are
    rendered into the order now. One that does not render is left out: the preflight renders
    what the hosts really run and refuses the plant if that fails, before any host changes."""
    renderer = Renderer(project, release)
    problems: list[Problem] = []
    works: dict[str, WorkOrder] = {}
    olds: dict[str, Renderer | ConfigError] = {}
    for name in plants:
        plant = project.plants[name]
        try:
            bundles = {b.layer: b for b in renderer.render_plant(plant)}
            steps = Steps(renderer.render_steps(plant))
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        old = _old_steps(project, plant, (known or {}).get(name, ()), olds)
        works[name] = WorkOrder.build(name, release.id, release.commit, bundles, steps, old)
    if problems:
        raise ConfigError(problems)
    return works


def _old_steps(
    project: Project, plant: Plant, commits: Collection[str], renderers: dict[str, Renderer | ConfigError]
) -> dict[str, Steps]:
    """The steps of each of ``commits``; ``renderers`` keeps one per commit, so each is read from git once."""
    found: dict[str, Steps] = {}
    for commit in sorted(set(commits)):
        try:
            if commit not in renderers:
                renderers[commit] = Renderer(project, project.release(commit))
            renderer = renderers[commit]
            if isinstance(renderer, ConfigError):
                continue
            found[commit] = Steps(renderer.render_steps(plant))
        except ConfigError as exc:
            renderers.setdefault(commit, exc)
            continue  # refused at preflight if a host really runs it
    return found


def known_commits(journal: Journal, plants: list[str]) -> dict[str, list[str]]:
    """Per plant, the commits the state knows its hosts ran: those of the latest ``plant.before``
    and the release of every rollout the plant finished on (``plant.done``)."""
    found: dict[str, set[str]] = {name: set() for name in plants}
    commits = {r.id: r.commit for r in journal.rollouts()}
    for stored in journal.events(kinds=("plant.before", "plant.done")):
        event = stored.event
        if event.plant not in found:
            continue
        if event.kind == "plant.done" and commits.get(stored.rollout):
            found[event.plant].add(str(commits[stored.rollout]))
        before = event.detail.get("before") if event.kind == "plant.before" else None
        if isinstance(before, dict):
            found[event.plant] = {str(t["commit"]) for t in before.values() if isinstance(t, dict) and t.get("commit")}
    return {name: sorted(commits_) for name, commits_ in found.items()}
