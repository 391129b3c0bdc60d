"""Everything a plant's deploy needs, rendered before any host is touched. Nothing here prints or exits."""

from __future__ import annotations

from collections.abc import Callable

from rollout.config.codebase import Release
from rollout.config.project import Plant, Project
from rollout.core.render import Renderer
from rollout.engine.executor import Steps
from rollout.engine.runner import WorkOrder
from rollout.errors import ConfigError, Problem


def _old_steps(project: Project, plant: Plant, fallback: Steps) -> Callable[[str | None], Steps]:
    """Checks and steps of the release a host ran before, rendered from its commit; ``fallback``
    when no commit is known (the host ran nothing: only the stop step of what is removed runs).

    A commit whose checks cannot be rendered raises ConfigError, every time it is asked: the
    executor asks before it touches a host, so a deploy is refused rather than a rollback left
    with the wrong checks."""
    cache: dict[str | None, Steps | ConfigError] = {}

    def steps(commit: str | None) -> Steps:
        if commit not in cache:
            try:
                renderer = Renderer(project, project.release(commit)) if commit else None
                cache[commit] = Steps(renderer.render_steps(plant)) if renderer else fallback
            except ConfigError as exc:
                cache[commit] = exc
        found = cache[commit]
        if isinstance(found, ConfigError):
            raise found
        return found

    return steps


def render_work(project: Project, release: Release, plants: list[str]) -> dict[str, WorkOrder]:
    """Render every plant of the rollout up front: bad input stops it before any host is touched."""
    renderer = Renderer(project, release)
    problems: list[Problem] = []
    works: dict[str, WorkOrder] = {}
    for name in plants:
        plant = project.plants[name]
        try:
            bundles = {b.layer: b for b in renderer.render_plant(plant)}
            steps = Steps(renderer.render_steps(plant))
            works[name] = WorkOrder(name, release.id, release.commit, bundles, steps, _old_steps(project, plant, steps))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return works
