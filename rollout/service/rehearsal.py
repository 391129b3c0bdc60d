"""Rehearsal: the whole staged rollout against simulated copies of every plant.

Each host of each plant becomes a folder on this machine (local transport) with its own
loopback address, so that bundles render with their real overlays and services bind and
answer their real checks here, and no real plant is touched. The copies start empty: a
rehearsal is a first install of the release everywhere.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

from rollout.config.codebase import Release
from rollout.config.inventory import Host, Inventory
from rollout.config.project import Plant, Project
from rollout.core.clock import Clock
from rollout.core.events import EventSink, discard
from rollout.core.plan import make_plan
from rollout.core.render import Renderer
from rollout.core.workorder import WorkOrder
from rollout.engine.executor import Executor, Options, Steps, Target
from rollout.service.orchestrator import RolloutResult
from rollout.service.rollouts import start_rollout
from rollout.service.state import REHEARSAL_DIR, rehearsal_journal

REHEARSAL_NET = "127.77"


def rehearsal_project(project: Project, root: Path) -> Project:
    """The project with every host made a local folder under ``root`` at a loopback address."""
    plants: dict[str, Plant] = {}
    serial = 0
    for name, plant in project.plants.items():
        hosts: dict[str, Host] = {}
        for host_name, host in plant.inventory.hosts.items():
            serial += 1
            address = f"{REHEARSAL_NET}.{serial // 250}.{serial % 250 + 1}"
            folder = root / name / host_name
            variables = {
                **host.vars,
                "ansible_connection": "local",
                "ansible_host": address,
                "rollout_root": str(folder),
            }
            hosts[host_name] = Host(host_name, address, MappingProxyType(variables))
        inventory = Inventory(plant.inventory.file, MappingProxyType(hosts), plant.inventory.groups)
        plants[name] = replace(plant, inventory=inventory)
    return replace(project, plants=MappingProxyType(plants))


def rehearse(
    project: Project,
    ref: str | None,
    waves: list[str],
    plants: list[str],
    options: Options,
    display: EventSink,
    clock: Clock,
) -> RolloutResult:
    """The staged rollout of ``ref`` on simulated copies of every plant; no real host is touched.

    Approvals count as given, windows as open, and a bake is one round of checks. The copies
    live in ``.rollout/rehearsal/`` with their own journal; their services are stopped and
    their releases removed at the end.
    """
    root = project.root / REHEARSAL_DIR
    shutil.rmtree(root, ignore_errors=True)
    copy = rehearsal_project(project, root / "hosts")
    release = copy.release(ref)
    last_wave = make_plan(copy, release.id, release.commit).waves[-1].name
    quick = replace(
        copy,
        config=copy.config.model_copy(
            update={
                "strategy": copy.config.strategy.model_copy(
                    update={
                        "waves": [
                            w.model_copy(update={"bake": min(w.bake or copy.config.strategy.bake, 1.0)})
                            for w in copy.config.strategy.waves
                        ]
                    }
                )
            }
        ),
    )
    journal = rehearsal_journal(project)
    try:
        return start_rollout(quick, ref, waves, plants, options, display, clock, last_wave, True, journal)
    finally:
        _clear(quick, release, options)


def _clear(project: Project, release: Release, options: Options) -> None:
    """Stop what a rehearsal started: every plant back to nothing, its (rendered) stop steps run."""
    executor = Executor(project, options, discard)
    renderer = Renderer(project, release)
    for plant in project.plants.values():
        nothing = {
            (layer.name, host.name): Target(None)
            for layer in executor.layers()
            for host in executor.hosts(plant, layer)
        }
        steps = Steps(renderer.render_steps(plant))
        order = WorkOrder.build(plant.name, release.id, release.commit, {}, steps, {})
        executor.restore(order, nothing, "rehearsal over")
