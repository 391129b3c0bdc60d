"""The commands and checks of both releases are templates, rendered before any host is touched."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import commit_all
from deploykit import RELEASES, DeployProject, PlantSpec, build, events_of, write_values


@pytest.fixture
def dp(tmp_path: Path) -> Iterator[DeployProject]:
    project = build(tmp_path, "local", None, [PlantSpec("p1")], light=True)
    yield project
    project.stop_services()


def edit_config(dp: DeployProject, old: str, new: str) -> None:
    path = dp.root / "rollout.yaml"
    text = path.read_text()
    assert old in text, f"{old!r} not in rollout.yaml"
    path.write_text(text.replace(old, new))


def test_a_deploy_whose_rollback_checks_do_not_render_is_refused_before_any_host_changes(
    dp: DeployProject, rollout
) -> None:
    assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
    write_values(dp.root, {**RELEASES["v2"], "marker": "ok"})  # v3 knows a value v1 never had
    commit_all(dp.root, "release v3", "v3")
    edit_config(dp, "grep -qx ok current/status.txt", "grep -qx {{ values.marker }} current/status.txt")
    done = rollout("deploy", "-C", dp.root, "--release", "v3", "--yes", "--json")
    assert done.code == 1, done.text
    failed = [e for e in events_of(done.out) if e.get("kind") == "plant.preflight_failed"]
    assert failed, done.out
    reason = failed[0]["detail"]["reason"]
    assert "v1" in reason and "do not render" in reason and "marker" in reason, reason
    kinds = [e.get("kind") for e in events_of(done.out)]
    assert "layer.staging" not in kinds and "layer.activating" not in kinds, kinds
    dp.assert_whole("p1", "v1")  # nothing changed


def test_the_stop_step_is_a_template(dp: DeployProject, rollout) -> None:
    edit_config(
        dp,
        "stop: {command: sh current/svc.sh stop, timeout: 15s}",
        "stop: {command: 'sh current/svc.sh stop && echo stopped-{{ plant.name }} > stopped.txt', timeout: 15s}",
    )
    done = rollout("deploy", "-C", dp.root, "--release", "bad-ingest", "--yes")  # a first install that fails
    assert done.code == 1, done.text
    stopped = dp.host_roots["p1-in"] / "srv/dp/ingest/stopped.txt"
    assert stopped.exists(), f"the stop step did not run: {done.text[-2000:]}"
    assert stopped.read_text().strip() == "stopped-p1"
    dp.assert_whole("p1", None)  # back to nothing
