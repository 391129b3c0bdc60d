"""The plant's side of an order: the kit written into the agent's project folder and loaded, and
the executor run on it exactly as the centre runs it for a direct plant. The node has no code
base: the steps of every release the plant may go back to come with the order."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

from rollout.agent.settings import AgentSettings
from rollout.config.project import Project, load_project
from rollout.core.agentwork import Assignment, unpack_kit
from rollout.core.bundle import Bundle
from rollout.core.events import EventSink
from rollout.core.steps import PlantResult, Steps, Target
from rollout.core.workorder import MissingWork, RenderBundles, RenderSteps, WorkOrder
from rollout.engine.layout import Running
from rollout.engine.runner import InProcessRunner
from rollout.errors import ConfigError
from rollout.service.options import project_options
from rollout.service.rollbacks import previous_commit, previous_targets

KIT_MARK = ".rollout-kit.json"
"""In the project folder: the kit it holds and its files (those of an older kit are removed)."""


def load_kit(folder: Path, kit: str, fetch: Callable[[str], bytes]) -> Project:
    """The plant's project as the kit ``kit`` has it, written into ``folder`` (the hosts' folders of
    local connections, under ``.rollout/``, stay where they are) and loaded."""
    mark = folder / KIT_MARK
    known = json.loads(mark.read_text()) if mark.is_file() else {}
    if known.get("kit") != kit:
        files = unpack_kit(kit, fetch)
        for path, (content, mode) in files.items():
            target = folder / path
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".part")
            partial.write_bytes(content)
            partial.chmod(mode & 0o755)
            os.replace(partial, target)
        for old in set(known.get("files", [])) - set(files):
            (folder / old).unlink(missing_ok=True)
        mark.write_text(json.dumps({"kit": kit, "files": sorted(files)}))
    return load_project(folder)


class NodeRunner(InProcessRunner):
    """The in-process runner on the plant's node, for one order. The node has no code base: a
    release's steps come from the order (its own release's, or an older one it carries); a host
    on any other release makes the plant refused before any host changes."""

    def __init__(self, project: Project, settings: AgentSettings, order: WorkOrder, operator: str) -> None:
        options = project_options(project, operator, settings.insecure)
        if settings.known_hosts is not None and not settings.insecure:
            options = replace(options, known_hosts=settings.known_hosts)
        super().__init__(project, options)
        self.order = order

    def render(self, plant: str) -> RenderSteps:
        def from_order(commit: str) -> Steps:
            if commit == self.order.commit:
                return self.order.new_steps()
            if commit in self.order.old_steps:
                return self.order.steps_of(commit)
            raise ConfigError.one(
                "(work order)", f"the centre did not send the checks of commit {commit[:12]}, which a host runs",
                expected="an order rendered with every release the state knows the plant ran",
            )  # fmt: skip

        return from_order

    def bundles(self, plant: str) -> RenderBundles:
        def refuse(commit: str, release: str) -> Mapping[str, Bundle]:
            raise ConfigError.one(
                "(work order)", f"the plant's node has no code base to render {release} ({commit[:12]}) again",
                expected="a clean copy sent with the order",
            )  # fmt: skip

        return refuse


def node_rollback(runner: NodeRunner, order: WorkOrder, a: Assignment, sink: EventSink) -> PlantResult:
    """Plant IT's rollback on the node: to the order's release, or each host back to what its own
    record says it ran before (with that release's checks from the order)."""
    project = runner.project
    plant = project.plants[a.plant]
    layers = [lay for lay in project.config.layers if lay.name in a.layers]
    executor = runner._executor(sink)

    def choose(running: dict[tuple[str, str], Running]) -> tuple[dict[tuple[str, str], Target], Steps]:
        if a.to_order:
            bundles = order.bundles
            keys = [(lay.name, host.name) for lay in layers for host in executor.hosts(plant, lay)]
            return {key: Target.of(bundles[key[0]]) for key in keys}, order.new_steps()
        targets = previous_targets(executor, plant, layers, running)
        commit = previous_commit(running, targets)
        try:
            return targets, order.steps_of(commit) if commit else Steps({})
        except MissingWork as exc:
            raise ConfigError.one("(work order)", str(exc), expected="the checks of the release gone back to") from None

    return executor.rollback(plant, layers, choose)


def node_rebuild(runner: NodeRunner, order: WorkOrder, a: Assignment, sink: EventSink) -> PlantResult:
    """``rollout restore`` on the node: each host of the order's keys brought to its layer's bundle."""
    bundles = order.bundles
    targets = {}
    for key in a.keys:
        layer, host = key.split("/", 1)
        targets[(layer, host)] = Target.of(bundles[layer])
    plant = runner.project.plants[a.plant]
    return runner._executor(sink).rebuild(plant, targets, order.new_steps())
