"""Disaster recovery: ``rollout restore`` brings a wiped host, or a whole rebuilt plant, back to
the release the state says it ran, with the same bundle, and checks it. Real folders (the local
transport) and real sshd hosts, one of them replaced by an empty machine."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from deploykit import DeployProject, build, events_of, journal_complete
from fleet import Fleet, SshHost
from rollout.service import open_state


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    hosts = Fleet(tmp_path_factory.mktemp("fleet"), 2, first=91).start()
    yield hosts
    hosts.stop()


@pytest.fixture
def dp(tmp_path: Path) -> Iterator[DeployProject]:
    project = build(tmp_path, "local", None, light=True)
    yield project
    project.stop_services()


def _bundles(dp: DeployProject) -> dict[tuple[str, str], tuple[str | None, str | None]]:
    """(layer, host) -> (release, bundle hash), as each host's own record and manifest say."""
    found = {}
    for key, row in dp.states("p1").items():
        assert row.running is not None, row.error
        found[key] = (row.running.release, row.running.bundle_hash)
    return found


def _wipe(dp: DeployProject, *hosts: str) -> None:
    """The host replaced by an empty machine: its services gone, every target folder gone."""
    dp.stop_services()
    for host in hosts:
        shutil.rmtree(dp.host_roots[host])
        dp.host_roots[host].mkdir()


def test_restore_brings_a_wiped_host_back_to_the_same_release(dp: DeployProject, rollout) -> None:
    assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
    assert rollout("deploy", "-C", dp.root, "--release", "v2", "--yes").code == 0
    before = _bundles(dp)
    _wipe(dp, "p1-in")
    assert _bundles(dp)[("ingest", "p1-in")] == (None, None)
    wiped = rollout("status", "-C", dp.root, "--verify", "--json")
    assert wiped.code == 1, wiped.out + wiped.err
    row = next(r for r in events_of(wiped.out) if r["host"] == "p1-in")
    assert row["release"] == "v2" and "nothing installed" in str(row["unreadable"])

    done = rollout("restore", "-C", dp.root, "--plant", "p1", "--host", "p1-in", "--reason", "disk replaced", "--json")
    assert done.code == 0, done.out + done.err
    assert _bundles(dp) == before
    dp.assert_whole("p1", "v2")
    assert dp.health("p1") == "healthy 2"  # restarted and checked
    events = events_of(done.out)
    checked = [e for e in events if e.get("kind") == "check.result"]
    assert checked and {e["host"] for e in checked} == {"p1-in"}
    assert all(e["detail"]["outcome"] == "succeeded" for e in checked)  # type: ignore[index]
    journal = open_state(dp.project())
    record = journal.rollouts()[-1]
    assert (record.kind, record.release, record.spec["host"], record.spec["reason"]) == (
        "restore",
        "v2",
        "p1-in",
        "disk replaced",
    )
    assert record.commit == dp.project().release("v2").commit
    history = [h for h in events_of(rollout("history", "-C", dp.root, "--json").out) if h["kind"] == "restore"]
    assert history and history[-1]["plants"] == {"p1": "updated"}
    journal_complete(dp)


def test_restore_of_a_rebuilt_plant_brings_every_layer_back(dp: DeployProject, rollout) -> None:
    assert rollout("deploy", "-C", dp.root, "--release", "v2", "--yes").code == 0
    assert rollout("rollback", "-C", dp.root, "--plant", "p1", "--to", "v1").code == 0
    before = _bundles(dp)
    _wipe(dp, "p1-gw1", "p1-in")
    done = rollout("restore", "-C", dp.root, "--plant", "p1")
    assert done.code == 0, done.out + done.err
    assert _bundles(dp) == before
    dp.assert_whole("p1", "v1")
    assert dp.health("p1") == "healthy 1"
    assert rollout("status", "-C", dp.root, "--verify").code == 0


def test_restore_after_a_plant_it_rollback_takes_the_overlays_recorded_at_deploy(dp: DeployProject, rollout) -> None:
    assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
    assert rollout("deploy", "-C", dp.root, "--release", "v2", "--yes").code == 0
    assert rollout("rollback", "-C", dp.root, "--plant", "p1").code == 0  # back to v1, nothing rendered
    before = _bundles(dp)
    _wipe(dp, "p1-in")
    done = rollout("restore", "-C", dp.root, "--plant", "p1", "--host", "p1-in")
    assert done.code == 0, done.out + done.err
    assert _bundles(dp) == before
    assert dp.health("p1") == "healthy 1"


def test_changed_overlays_stop_the_restore_unless_asked_for(dp: DeployProject, rollout) -> None:
    assert rollout("deploy", "-C", dp.root, "--release", "v2", "--yes").code == 0
    _wipe(dp, "p1-in")
    values = dp.root / "overlays/p1/values.yaml"
    values.write_text(values.read_text() + "version: 2\n")  # same bytes rendered, yet changed
    refused = rollout("restore", "-C", dp.root, "--plant", "p1")
    assert refused.code == 2, refused.out + refused.err
    assert "changed since" in refused.err and "--current-overlays" in refused.err
    assert _bundles(dp)[("ingest", "p1-in")] == (None, None)  # nothing touched
    assert not [r for r in open_state(dp.project()).rollouts() if r.kind == "restore"]

    done = rollout("restore", "-C", dp.root, "--plant", "p1", "--current-overlays")
    assert done.code == 0, done.out + done.err
    dp.assert_whole("p1", "v2")
    assert open_state(dp.project()).rollouts()[-1].spec["current_overlays"] is True


def test_restore_refuses_what_the_state_cannot_say(dp: DeployProject, rollout) -> None:
    never = rollout("restore", "-C", dp.root, "--plant", "p1")
    assert never.code == 2 and "records no release" in never.err
    assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
    unknown = rollout("restore", "-C", dp.root, "--plant", "p1", "--host", "nobody")
    assert unknown.code == 2 and "nobody" in unknown.err


FORGET = "UPDATE events SET detail = json_remove(detail, '$.commit', '$.overlay_hash') WHERE kind = 'layer.activated'"


def _forget(dp: DeployProject, sql: str) -> None:
    """The state as an older rollout left it: its switches recorded no commit and no overlays."""
    with closing(sqlite3.connect(dp.root / ".rollout/state.db")) as db:
        db.execute(sql)
        db.commit()


def test_layers_switched_before_commits_were_recorded_are_restored_only_when_asked(dp: DeployProject, rollout) -> None:
    assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
    assert rollout("deploy", "-C", dp.root, "--release", "v2", "--yes").code == 0
    before = _bundles(dp)
    _forget(dp, FORGET)
    _wipe(dp, "p1-in")
    refused = rollout("restore", "-C", dp.root, "--plant", "p1", "--host", "p1-in")
    assert refused.code == 2, refused.out + refused.err
    assert "switched before rollout recorded them" in refused.err and "--current-overlays" in refused.err, refused.err
    assert _bundles(dp)[("ingest", "p1-in")] == (None, None), "a refused restore touched the host"

    # the commit of the rollout that deployed it
    done = rollout("restore", "-C", dp.root, "--plant", "p1", "--host", "p1-in", "--current-overlays", "--json")
    assert done.code == 0, done.out + done.err
    assert _bundles(dp) == before, "not the same release and bundle"
    deployed = next(r for r in open_state(dp.project()).rollouts() if r.kind == "deploy" and r.release == "v2")
    warnings = [str(e["detail"]) for e in events_of(done.out) if e.get("kind") == "warning"]
    assert len(warnings) == 1 and f"the commit of rollout {deployed.id}" in warnings[0], warnings
    record = open_state(dp.project()).rollouts()[-1]
    assert record.kind == "restore" and record.spec["current_overlays"] is True
    [assumed] = record.spec["assumed"]
    assert assumed.startswith("layer ingest: ") and deployed.id in assumed, record.spec
    kept = [e.event for e in open_state(dp.project()).events(rollout=record.id) if e.event.kind == "warning"]
    assert len(kept) == 1 and deployed.id in str(kept[0].detail), "the assumption is not in the journal"

    # no commit on the rollout either (the restore's own switch recorded one: forgotten too)
    _forget(dp, FORGET)
    _forget(dp, "UPDATE rollouts SET commit_id = NULL")
    _wipe(dp, "p1-in")
    done = rollout("restore", "-C", dp.root, "--plant", "p1", "--host", "p1-in", "--current-overlays", "--json")
    assert done.code == 0, done.out + done.err
    assert _bundles(dp) == before
    warnings = [str(e["detail"]) for e in events_of(done.out) if e.get("kind") == "warning"]
    assert len(warnings) == 1 and "what the ref v2 names now" in warnings[0], warnings

    # and a release whose name is no ref any more: refused, saying so
    _forget(dp, FORGET)
    _forget(dp, "UPDATE events SET release = 'v2-gone' WHERE kind = 'layer.activated' AND release = 'v2'")
    _wipe(dp, "p1-in")
    gone = rollout("restore", "-C", dp.root, "--plant", "p1", "--host", "p1-in", "--current-overlays")
    assert gone.code == 2 and "v2-gone names no commit of the code base now" in gone.err, gone.err
    assert _bundles(dp)[("ingest", "p1-in")] == (None, None)


def _replace_machine(fleet: Fleet, host: SshHost) -> None:
    """An empty machine in its place, given the host's key (so it is still verified): the server
    stopped, its home recreated with the key and configuration alone, then started again."""
    fleet.ensure_running()
    fleet.kill(host)
    kept = {name: (host.home / name).read_bytes() for name in ("host_key", "host_key.pub", "sshd_config")}
    shutil.rmtree(host.home)
    host.home.mkdir()
    for name, data in kept.items():
        (host.home / name).write_bytes(data)
    (host.home / "host_key").chmod(0o600)
    fleet.launch(host)


def test_restore_over_ssh_of_a_replaced_host(fleet: Fleet, tmp_path: Path, rollout) -> None:
    fleet.ensure_running()
    dp = build(tmp_path, "ssh", fleet, light=True)
    try:
        assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
        assert rollout("deploy", "-C", dp.root, "--release", "v2", "--yes").code == 0
        before = _bundles(dp)
        _wipe(dp, "p1-in")
        address = dp.project().plants["p1"].inventory.hosts["p1-in"].address
        _replace_machine(fleet, next(h for h in fleet.hosts if h.address == address))
        done = rollout("restore", "-C", dp.root, "--plant", "p1", "--host", "p1-in")
        assert done.code == 0, done.out + done.err
        assert _bundles(dp) == before
        dp.assert_whole("p1", "v2")
        assert dp.health("p1") == "healthy 2"
    finally:
        dp.stop_services()
        fleet.ensure_running()
