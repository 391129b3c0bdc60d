"""Deploying one plant, over the local transport and over real sshd hosts: the same suite.

After every fault the test reads each host's own record and asserts that every layer
of the plant runs one whole release.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from deploykit import SERVICE_PORT, DeployProject, build
from fleet import Fleet
from rollout import service
from rollout.core.events import Event
from rollout.engine.runner import InProcessRunner

TRANSPORTS = ["local", "ssh"]


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    fleet = Fleet(tmp_path_factory.mktemp("fleet"), 8).start()
    yield fleet
    fleet.stop()


@pytest.fixture(params=TRANSPORTS)
def dp(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DeployProject]:
    fleet: Fleet | None = None
    if request.param == "ssh":
        fleet = request.getfixturevalue("fleet")
        fleet.ensure_running()
    project = build(tmp_path, request.param, fleet, plants=2 if "two_plants" in request.keywords else 1)
    yield project
    project.stop_services()


@pytest.fixture
def dp_ssh(fleet: Fleet, tmp_path: Path) -> Iterator[DeployProject]:
    fleet.ensure_running()
    project = build(tmp_path, "ssh", fleet)
    yield project
    project.stop_services()
    fleet.ensure_running()


def deploy(dp: DeployProject, release: str, plant: str = "p1", on_event: Callable[[Event], None] | None = None):
    events: list[Event] = []

    def sink(event: Event) -> None:
        events.append(event)
        if on_event:
            on_event(event)

    project = dp.project()
    work = service.render_work(project, project.release(release), [plant])[plant]
    runner = InProcessRunner(project, dp.options)
    return runner.deploy(work, None, sink), events


def ingest_address(dp: DeployProject, plant: str = "p1") -> str:
    host = dp.project().plants[plant].inventory.group_hosts("ingest")[0]
    return host.address


def health(dp: DeployProject, plant: str = "p1") -> str:
    url = f"http://{ingest_address(dp, plant)}:{SERVICE_PORT}/health.txt"
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode().strip()


def kinds(events: list[Event], *wanted: str) -> list[tuple[str, str | None]]:
    return [(e.kind, e.layer) for e in events if e.kind in wanted]


def test_first_install_upgrade_and_repeat(dp: DeployProject) -> None:
    result, events = deploy(dp, "v1")
    assert result.outcome == "updated", result.reason
    dp.assert_whole(release="v1")
    assert health(dp) == "healthy 1"
    result, _ = deploy(dp, "v2")
    assert result.outcome == "updated", result.reason
    dp.assert_whole(release="v2")
    assert health(dp) == "healthy 2"
    record = dp.states()[("edge", "p1-gw1")].running.record
    assert record["previous"]["release"] == "v1" and record["by"] == "tester@test" and record["action"] == "deploy"
    again, events = deploy(dp, "v2")
    assert again.outcome == "unchanged" and not kinds(events, "layer.staging", "layer.activating")
    assert {e.kind for e in events} >= {"check.result", "plant.done"}  # checks still run


def test_a_failed_check_rolls_back_the_layers_below_in_reverse(dp: DeployProject) -> None:
    deploy(dp, "v1")
    result, events = deploy(dp, "bad-ingest")
    assert result.outcome == "rolled_back" and "check health" in result.reason
    assert kinds(events, "rollback.layer") == [("rollback.layer", "ingest"), ("rollback.layer", "edge")]
    failed = [e for e in events if e.kind == "check.result" and e.detail["outcome"] != "succeeded"]
    assert failed and failed[0].layer == "ingest" and failed[0].detail["attempts"] == 3
    dp.assert_whole(release="v1")
    assert health(dp) == "healthy 1"  # the restart step ran again on the way back


def test_a_failed_restart_step_rolls_back(dp: DeployProject) -> None:
    deploy(dp, "v1")
    result, _ = deploy(dp, "bad-restart")
    assert result.outcome == "rolled_back" and "refuses to start" in result.reason
    dp.assert_whole(release="v1")
    assert health(dp) == "healthy 1"
    assert not dp.states()[("ingest", "p1-in")].running.restart_owed  # v1's restart on the way back settled it


def test_a_host_that_owes_its_restart_gets_it_from_the_next_deploy(dp: DeployProject) -> None:
    deploy(dp, "v2")
    layer = dp.host_roots["p1-in"] / "srv/dp/ingest"
    owed = layer / ".rollout/unsettled"
    assert not owes(layer) and not dp.states()[("ingest", "p1-in")].running.restart_owed
    owed.write_text("v1-000000000000\n")  # another folder's note: what runs was restarted since
    again, events = deploy(dp, "v2")
    assert again.outcome == "unchanged" and not kinds(events, "layer.restarting")
    # A run stopped between switch and restart: the new link, the service gone or still the old one.
    dp.stop_services()
    owed.write_text(Path(os.readlink(layer / "current")).name + "\n")
    assert dp.states()[("ingest", "p1-in")].running.restart_owed
    result, events = deploy(dp, "v2")
    assert result.outcome == "updated", result.reason
    assert kinds(events, "layer.restarting", "layer.activating") == [("layer.restarting", "ingest")]
    assert health(dp) == "healthy 2" and not owes(layer)
    dp.assert_whole(release="v2")


def test_a_restart_playbook_settles_the_hosts_it_restarted(tmp_path: Path) -> None:
    dp = build(tmp_path, "local", None)
    try:
        config = dp.root / "rollout.yaml"
        step = "    restart: {playbook: playbooks/restart.yml, timeout: 120s}\n"
        config.write_text(config.read_text().replace("    activation: {playbook", step + "    activation: {playbook"))
        (dp.root / "playbooks/restart.yml").write_text(RESTART_PLAYBOOK)
        layer = dp.host_roots["p1-dash"] / "srv/dp/dashboards"
        result, events = deploy(dp, "v1")
        assert result.outcome == "updated", result.reason
        assert ("layer.restarting", "dashboards") in kinds(events, "layer.restarting")
        assert (layer / "restarted").read_text().split() == ["v1"] and not owes(layer)
        (layer / ".rollout/unsettled").write_text(Path(os.readlink(layer / "current")).name + "\n")
        again, events = deploy(dp, "v1")
        assert ("layer.restarting", "dashboards") in kinds(events, "layer.restarting")
        assert (layer / "restarted").read_text().split() == ["v1", "v1"] and not owes(layer)
    finally:
        dp.stop_services()


def owes(layer: Path) -> bool:
    """The layer's folder notes a restart owed (an empty note: none)."""
    note = layer / ".rollout/unsettled"
    return note.exists() and bool(note.read_text().strip())


RESTART_PLAYBOOK = """
- name: Restart the dashboards
  hosts: dashboards
  gather_facts: false
  tasks:
    - name: Note the restart
      ansible.builtin.shell:
        cmd: echo "{{ rollout_release }}" >> restarted
        chdir: "{{ rollout_target }}"
"""


def test_a_failed_playbook_check_rolls_back_all_three_layers(dp: DeployProject) -> None:
    deploy(dp, "v1")
    result, events = deploy(dp, "bad-board")
    assert result.outcome == "rolled_back" and "published" in result.reason
    assert [layer for _, layer in kinds(events, "rollback.layer")] == ["dashboards", "ingest", "edge"]
    dp.assert_whole(release="v1")


def test_a_rollback_whose_own_check_fails_needs_attention(dp: DeployProject, rollout) -> None:
    deploy(dp, "v1")
    (dp.host_roots["p1-gw1"] / "poison").write_text("the old release cannot pass either\n")
    failed = rollout("deploy", "-C", dp.root, "--release", "v2", "--json")
    assert failed.code == 3, failed.text
    lines = [json.loads(line) for line in failed.out.splitlines()]
    assert lines[-1]["type"] == "rollout" and lines[-1]["plants"] == {"p1": "attention"}
    attention = [line for line in lines if line.get("kind") == "plant.attention"]
    assert len(attention) == 1 and "rollback failed too" in attention[0]["detail"]["reason"]
    states = dp.states()
    assert states[("edge", "p1-gw1")].running.attention is not None
    dp.assert_whole(release="v1")  # switched back even so: one whole release, marked for a person
    (dp.host_roots["p1-gw1"] / "poison").unlink()
    fixed, _ = deploy(dp, "v2")
    assert fixed.outcome == "updated"
    assert all(row.running.attention is None for row in dp.states().values())


def test_preflight_stops_before_anything_changes_when_there_is_no_room(dp: DeployProject) -> None:
    deploy(dp, "v1")
    before = {key: row.running for key, row in dp.states().items()}
    yaml_path = dp.root / "rollout.yaml"
    yaml_path.write_text(yaml_path.read_text().replace("min_free_mb: 1", "min_free_mb: 900000000"))
    result, events = deploy(dp, "v2")
    assert result.outcome == "preflight_failed" and "KiB needed" in result.reason
    assert not kinds(events, "layer.staging", "layer.activating")
    assert {key: row.running for key, row in dp.states().items()} == before


def test_preflight_stops_on_a_target_that_cannot_be_written(dp: DeployProject) -> None:
    blocked = dp.host_roots["p1-dash"]
    blocked.mkdir(parents=True)
    (blocked / "srv").write_text("a file where the target's folder should be\n")
    result, events = deploy(dp, "v1")
    assert result.outcome == "preflight_failed" and "p1-dash" in result.reason and "not a folder" in result.reason
    assert not kinds(events, "layer.staging")
    assert not (dp.host_roots["p1-gw1"] / "srv").exists()  # nothing created anywhere


def test_a_failed_first_install_leaves_nothing_activated(dp: DeployProject) -> None:
    result, events = deploy(dp, "bad-ingest")
    assert result.outcome == "rolled_back"
    dp.assert_whole(release=None)
    for name in ("p1-gw1", "p1-in"):
        layer = "edge" if "gw" in name else "ingest"
        assert not (dp.host_roots[name] / "srv/dp" / layer / "current").exists()
    with pytest.raises(OSError):  # the stop step ran before the layer was removed
        socket.create_connection((ingest_address(dp), SERVICE_PORT), timeout=1).close()


def test_plant_it_rolls_back_a_plant_or_a_layer_and_those_above(dp: DeployProject, rollout) -> None:
    deploy(dp, "v1")
    deploy(dp, "v2")
    done = rollout("rollback", "-C", dp.root, "--plant", "p1", "--json")
    assert done.code == 0, done.text
    dp.assert_whole(release="v1")
    assert health(dp) == "healthy 1"
    up = rollout("rollback", "-C", dp.root, "--plant", "p1", "--layer", "ingest", "--to", "v2")
    assert up.code == 0, up.text
    dp.assert_whole(layers={"edge": "v1", "ingest": "v2", "dashboards": "v2"})
    nothing = rollout("rollback", "-C", dp.root, "--plant", "p2")
    assert nothing.code == 2  # no such plant in a one-plant project


def test_staging_is_skipped_when_the_same_manifest_is_there(dp: DeployProject) -> None:
    deploy(dp, "v1")
    releases = dp.host_roots["p1-gw1"] / "srv/dp/edge/releases"
    v1 = {p.name: p.stat().st_ino for p in releases.iterdir()}
    deploy(dp, "v2")
    result, events = deploy(dp, "v1")  # v1 is still staged: only the link moves
    assert result.outcome == "updated"
    assert sorted(p.name for p in releases.iterdir()) == sorted(dp.states()[("edge", "p1-gw1")].running.staged)
    assert {name: (releases / name).stat().st_ino for name in v1} == v1  # the same folder, not unpacked again
    assert not [p for p in releases.iterdir() if p.name.startswith(".")]  # nothing half-staged left
    dp.assert_whole(release="v1")


def test_old_releases_are_pruned_to_the_configured_count(dp: DeployProject) -> None:
    # edge keeps 2 besides the one it runs and the one before: pruned in the switch itself
    releases = dp.host_roots["p1-gw1"] / "srv/dp/edge/releases"
    previous = None
    for release in ("v1", "v2", "bad-fragile", "many", "bad-board", "v2"):
        result, _ = deploy(dp, release)
        state = dp.states()[("edge", "p1-gw1")].running
        assert len(state.staged) <= 4, (release, result.outcome, state.staged)
        assert state.release_dir in state.staged and (previous is None or previous in state.staged), state.staged
        previous = state.release_dir
    assert len(state.staged) == 4 and not [p for p in releases.iterdir() if p.name.startswith(".")]
    # A host this deploy does not move is pruned after it: with two old copies beside, the
    # two newest others stay besides the one it runs (the one before is that one now).
    for name, age in (("old-1-000000000000", 2), ("old-2-000000000000", 1)):
        shutil.copytree(releases / state.staged[-1], releases / name, symlinks=True)
        os.utime(releases / name, (1_000_000 * age, 1_000_000 * age))
    again, events = deploy(dp, "v2")
    assert again.outcome == "unchanged" and not kinds(events, "layer.activating")
    after = dp.states()[("edge", "p1-gw1")].running.staged
    assert after == (state.staged[0], state.staged[1], state.release_dir), (after, state.staged)
    dp.assert_whole(release="v2")


@pytest.mark.two_plants
def test_cli_deploy_exit_codes_and_json_events(dp: DeployProject, rollout) -> None:
    first = rollout("deploy", "-C", dp.root, "--release", "v1", "--json")
    assert first.code == 0, first.text
    records = [json.loads(line) for line in first.out.splitlines()]
    assert records[-1]["type"] == "rollout" and records[-1]["plants"] == {"p1": "updated", "p2": "updated"}
    order = [r["kind"] for r in records if r["type"] == "event" and r["plant"] == "p1"]
    assert order[:4] == ["plant.locked", "plant.started", "plant.before", "plant.preflight"]
    assert order[-2:] == ["plant.done", "plant.unlocked"]
    bad = rollout("deploy", "-C", dp.root, "--release", "bad-edge", "--plant", "p2")
    assert bad.code == 1 and "rolled_back" in bad.out
    dp.assert_whole("p1", "v1")
    dp.assert_whole("p2", "v1")


def test_ssh_host_keys_are_verified(dp_ssh: DeployProject, rollout) -> None:
    dp = dp_ssh
    known = dp.options.known_hosts
    assert known is not None
    original = known.read_text()
    try:
        lines = original.splitlines()
        other_key = lines[1].split(" ", 1)[1]
        lines[3] = lines[3].split(" ", 1)[0] + " " + other_key  # p1-dash presents a key we do not expect
        known.write_text("\n".join(lines) + "\n")
        result, _ = deploy(dp, "v1")
        assert result.outcome == "preflight_failed" and "host key" in result.reason
        known.write_text("".join(line + "\n" for i, line in enumerate(original.splitlines()) if i != 3))
        result, _ = deploy(dp, "v1")  # p1-dash is not known at all
        assert result.outcome == "preflight_failed" and "not in known_hosts" in result.reason
        assert not (dp.host_roots["p1-gw1"] / "srv").exists()  # nothing changed on the plant
        insecure = rollout("status", "-C", dp.root, "--live", "--insecure-skip-host-key-check")
        assert insecure.code == 0 and "NOT verified" in insecure.err
    finally:
        known.write_text(original)


def test_a_host_dropped_while_staging_leaves_the_plant_whole(dp_ssh: DeployProject, fleet: Fleet) -> None:
    dp = dp_ssh
    deploy(dp, "v1")
    ingest_host = fleet.hosts[2]

    def drop(event: Event) -> None:
        if event.kind == "layer.staging" and event.layer == "ingest":
            fleet.kill(ingest_host)

    result, events = deploy(dp, "v2", on_event=drop)
    assert result.outcome == "rolled_back" and "p1-in" in result.reason
    assert [layer for _, layer in kinds(events, "rollback.layer")] == ["edge"]  # the dropped host was never switched
    fleet.ensure_running()
    dp.assert_whole(release="v1")


def test_a_host_dropped_after_its_switch_needs_attention_then_heals(
    dp_ssh: DeployProject, fleet: Fleet, rollout
) -> None:
    dp = dp_ssh
    deploy(dp, "v1")
    ingest_host = fleet.hosts[2]

    def drop(event: Event) -> None:
        if event.kind == "layer.restarting" and event.layer == "ingest":
            fleet.kill(ingest_host)

    result, _ = deploy(dp, "v2", on_event=drop)
    assert result.outcome == "attention" and "p1-in" in result.reason
    states = dp.states()
    assert states[("ingest", "p1-in")].running is None  # still down: status says unreachable, not a guess
    edge = [states[("edge", h)].running for h in ("p1-gw1", "p1-gw2")]
    assert all(s.release == "v1" and s.whole and s.attention for s in edge)  # put back even so, and marked
    fleet.ensure_running()
    healed = rollout("rollback", "-C", dp.root, "--plant", "p1", "--to", "v1")
    assert healed.code == 0, healed.text
    dp.assert_whole(release="v1")
    assert all(row.running.attention is None for row in dp.states().values())
    assert health(dp) == "healthy 1"


def test_large_bundles_are_read_back_whole_and_not_sent_twice(dp: DeployProject) -> None:
    result, _ = deploy(dp, "many")
    assert result.outcome == "updated", result.reason
    dp.assert_whole(release="many")
    running = dp.states()[("edge", "p1-gw1")].running
    assert running.bundle_hash and len(running.record["bundle_hash"]) == 64
    # Forget that it runs: the next deploy must find the staged folder by its manifest and send nothing.
    releases = dp.host_roots["p1-gw1"] / "srv/dp/edge/releases"
    inode = (releases / running.release_dir).stat().st_ino
    (dp.host_roots["p1-gw1"] / "srv/dp/edge/current").unlink()
    again, events = deploy(dp, "many")
    assert again.outcome == "updated"
    staged = [e for e in events if e.kind == "layer.staging"]
    assert [e.detail["hosts"] for e in staged] == [["p1-gw1"]]
    assert (releases / running.release_dir).stat().st_ino == inode
    assert not [p for p in releases.iterdir() if p.name.startswith(".")]
    dp.assert_whole(release="many")
