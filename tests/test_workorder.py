"""Work orders as data: JSON and back, and a rollback that needs no git read once the plant started."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from deploykit import DeployProject, PlantSpec, build
from rollout import service
from rollout.core.events import Event
from rollout.core.render import Renderer
from rollout.core.steps import Target, release_dir
from rollout.core.workorder import MissingWork, WorkOrder
from rollout.engine.runner import InProcessRunner
from rollout.errors import RolloutError
from rollout.service.state import open_state
from rollout.service.workorders import known_commits


@pytest.fixture
def dp(tmp_path: Path) -> Iterator[DeployProject]:
    project = build(tmp_path, "local", None, [PlantSpec("p1")], light=True)
    yield project
    project.stop_services()


def test_a_work_order_goes_to_json_and_back(dp: DeployProject) -> None:
    project = dp.project()
    v1 = project.release("v1")
    order = service.render_work(project, project.release("v2"), ["p1"], {"p1": [v1.commit]})["p1"]
    assert list(order.old_steps) == [v1.commit], order.old_steps.keys()
    text = order.to_json()
    assert "content" not in text, "the bundles' files stay out of the order's JSON"
    back = WorkOrder.from_json(text, {b.bundle_hash: b for b in order.bundles.values()})
    assert back == order and back.to_json() == text, back.to_json()[:500]
    assert back.bundles == order.bundles
    assert back.steps_of(v1.commit) == order.steps_of(v1.commit)
    assert back.new_steps().fields and back.new_steps() == order.new_steps()
    alone = WorkOrder.from_json(text)
    with pytest.raises(MissingWork) as missing:
        assert not alone.bundles
    assert "not fetched" in str(missing.value), str(missing.value)
    with pytest.raises(MissingWork):
        order.steps_of("0" * 40)


def test_an_order_carries_clean_copies_and_hands_them_only_to_their_own_release(dp: DeployProject) -> None:
    project = dp.project()
    v1 = {b.layer: b for b in Renderer(project, project.release("v1")).render_plant(project.plants["p1"])}
    order = service.render_work(project, project.release("v2"), ["p1"])["p1"]
    clean = order.with_clean({release_dir(v1["edge"]): v1["edge"]})
    assert clean.hashes() == order.hashes() | {v1["edge"].bundle_hash}, "an agent would not fetch the clean copy"
    assert clean.bundles == order.bundles, "a clean copy with the same files took the new release's place"
    folder = release_dir(v1["edge"])
    back = WorkOrder.from_json(
        clean.to_json(), {b.bundle_hash: b for b in order.bundles.values()}, {folder: v1["edge"]}
    )
    assert back == clean and back.clean == {folder: v1["edge"].bundle_hash} and back.bundles == order.bundles
    bare = replace(Target.of(v1["edge"]), bundle=None)
    assert back.cleaned(bare).bundle == v1["edge"], "the drifted release gets its clean copy"
    assert order.cleaned(bare).bundle is None, "an order without it has none to give"
    other = replace(bare, bundle_hash="0" * 64)
    assert back.cleaned(other).bundle is None, "a copy of other files is no clean copy"
    assert back.cleaned(replace(Target.of(v1["ingest"]), bundle=None)).bundle is None


def test_a_rollback_mid_deploy_reads_no_git(dp: DeployProject) -> None:
    project = dp.project()
    runner = InProcessRunner(project, dp.options)
    first = service.render_work(project, project.release("v1"), ["p1"])["p1"]
    assert runner.deploy(first, None, lambda _: None).outcome == "updated"
    order = service.render_work(project, project.release("bad-ingest"), ["p1"])["p1"]
    git, away = dp.root / ".git", dp.root.parent / "git-away"
    events: list[Event] = []

    def sink(event: Event) -> None:
        events.append(event)
        if event.kind == "layer.failed":  # the plant started: from here on the code base is out of reach
            shutil.move(git, away)

    try:
        result = runner.deploy(order, None, sink)
        assert not git.exists(), [e.kind for e in events]
        with pytest.raises(RolloutError):
            project.release("v1")  # the repository really was unreadable during the rollback
    finally:
        if away.exists():
            shutil.move(away, git)
    kinds = [e.kind for e in events]
    assert result.outcome == "rolled_back", (result.reason, kinds)
    back = kinds.index("rollback.started")
    old_checks = [e for e in events[back:] if e.kind == "check.result"]
    assert old_checks and all(e.detail["outcome"] == "succeeded" and e.release == "v1" for e in old_checks), old_checks
    dp.assert_whole(release="v1")


def test_what_the_state_knows_is_rendered_up_front_and_the_rollback_needs_no_git_at_all(
    dp: DeployProject, rollout
) -> None:
    assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
    project = dp.project()
    v1 = project.release("v1").commit
    known = known_commits(open_state(project), ["p1"])
    assert known == {"p1": [v1]}, known
    order = service.render_work(project, project.release("bad-ingest"), ["p1"], known)["p1"]
    assert list(order.old_steps) == [v1], list(order.old_steps)
    git, away = dp.root / ".git", dp.root.parent / "git-away"
    shutil.move(git, away)  # before the plant starts: nothing after the order may read the code base
    events: list[Event] = []
    try:
        result = InProcessRunner(project, dp.options).deploy(order, None, events.append)
    finally:
        shutil.move(away, git)
    kinds = [e.kind for e in events]
    assert result.outcome == "rolled_back", (result.reason, kinds)
    back = kinds.index("rollback.started")
    old_checks = [e for e in events[back:] if e.kind == "check.result"]
    assert old_checks and all(e.detail["outcome"] == "succeeded" and e.release == "v1" for e in old_checks), old_checks
    dp.assert_whole(release="v1")
