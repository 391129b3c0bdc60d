"""Drift: ``rollout status --verify`` hashes each host's current release against its manifest,
the console's projection marks drifted layers, and a deploy re-stages a drifted release.

The pure comparison is table-tested; the rest runs on real folders (the local transport).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from deploykit import DeployProject, build, events_of
from fleet import Fleet
from rollout.core.drift import Drift, compare, parse_sums
from rollout.core.events import Event
from rollout.core.fleet import fleet
from rollout.service import open_project, open_state
from rollout.web.app import create_app

A, B, C = "a" * 64, "b" * 64, "c" * 64
MANIFEST = {"files": [{"path": "x.txt", "sha256": A}, {"path": "d/y.txt", "sha256": B}]}


@pytest.mark.parametrize(
    ("sums", "expected"),
    [
        ({"x.txt": A, "d/y.txt": B}, Drift()),
        ({"x.txt": C, "d/y.txt": B}, Drift(modified=("x.txt",))),
        ({"x.txt": A}, Drift(missing=("d/y.txt",))),
        ({"x.txt": A, "d/y.txt": B, "new": C}, Drift(added=("new",))),
        ({"x.txt": A, "d/y.txt": B, ".rollout-manifest.json": C}, Drift()),
        ({"d/y.txt": C, "z": A}, Drift(("d/y.txt",), ("x.txt",), ("z",))),
    ],
)
def test_compare_names_each_file_that_differs(sums: dict[str, str], expected: Drift) -> None:
    assert compare(MANIFEST, sums) == expected


def test_a_folder_without_a_manifest_is_drifted_as_a_whole() -> None:
    found = compare({}, {"x.txt": A})
    assert found.drifted and "no readable manifest" in found.summary()


def test_parse_sums_strips_the_dot_and_keeps_escaped_names_apart() -> None:
    text = f"{A}  ./x.txt\n{B}  ./d/y.txt\n\\{C}  ./odd\\nname\nnoise\n"
    assert parse_sums(text) == {"x.txt": A, "d/y.txt": B, "\\odd\\nname": C}


def test_summary_names_files_and_counts_the_rest() -> None:
    drift = Drift(modified=tuple(f"f{i}" for i in range(7)), added=("new",))
    assert drift.summary(limit=2) == "modified f0, f1 and 5 more; added new"


def test_fleet_shows_drifted_until_a_clean_verify_or_the_next_switch() -> None:
    def verified(t: float, **detail: object) -> Event:
        return Event("host.verified", "p1", "edge", "gw1", "v1", {"drifted": bool(detail), **detail}, time=t)

    base = [
        Event("plant.started", "p1", time=1),
        Event("layer.activated", "p1", "edge", release="v1", time=2),
        Event("plant.done", "p1", time=3),
    ]
    drifted = [*base, verified(4, modified=["x.txt"])]
    view = fleet({"p1": ["edge"]}, drifted)["p1"]
    assert (view.condition, view.layers["edge"].drift) == ("drifted", {"gw1": "modified x.txt"})
    assert view.layers["edge"].changed == 4
    assert fleet({"p1": ["edge"]}, [*drifted, verified(5)])["p1"].condition == "healthy"
    unreachable = Event("host.verified", "p1", "edge", "gw1", None, {"error": "no route"}, time=5)
    assert fleet({"p1": ["edge"]}, [*drifted, unreachable])["p1"].condition == "drifted"
    switched = [*drifted, Event("layer.activated", "p1", "edge", release="v2", time=6), Event("plant.done", "p1")]
    assert fleet({"p1": ["edge"]}, switched)["p1"].condition == "healthy"


@pytest.fixture
def dp(tmp_path: Path) -> Iterator[DeployProject]:
    project = build(tmp_path, "local", None, light=True)
    yield project
    project.stop_services()


def _layer_dir(dp: DeployProject, host: str, layer: str) -> Path:
    return dp.host_roots[host] / "srv/dp" / layer


def test_verify_names_the_file_edited_removed_and_added(dp: DeployProject, rollout) -> None:
    nothing = rollout("status", "-C", dp.root, "--verify", "--json")
    assert nothing.code == 0, nothing.err
    assert all(not r["drifted"] for r in events_of(nothing.out))
    assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
    clean = rollout("status", "-C", dp.root, "--verify")
    assert clean.code == 0, clean.out + clean.err
    assert "as released" in clean.out and "drifted" not in clean.out

    current = _layer_dir(dp, "p1-in", "ingest") / "current"
    (current / "health.txt").write_text("healthy 99\n")
    (current / "svc.sh").unlink()
    (current / "notes.txt").write_text("hand-made\n")
    found = rollout("status", "-C", dp.root, "--verify", "--json")
    assert found.code == 1, found.out + found.err
    rows = {(r["layer"], r["host"]): r for r in events_of(found.out)}
    ingest = rows[("ingest", "p1-in")]
    assert (ingest["modified"], ingest["missing"], ingest["added"]) == (["health.txt"], ["svc.sh"], ["notes.txt"])
    assert ingest["release"] == "v1" and ingest["drifted"]
    assert not rows[("edge", "p1-gw1")]["drifted"]
    words = rollout("status", "-C", dp.root, "--verify")
    assert words.code == 1
    assert "modified health.txt; missing svc.sh; added notes.txt" in words.out.replace("\n", " ")

    views = fleet({"p1": ["edge", "ingest"]}, (e.event for e in open_state(dp.project()).events()))
    assert views["p1"].layers["ingest"].condition == "drifted"
    assert views["p1"].layers["edge"].condition == "healthy"
    assert views["p1"].condition == "drifted"


def test_a_deploy_onto_a_drifted_release_says_so_and_stages_a_clean_copy(dp: DeployProject, rollout) -> None:
    assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
    current = _layer_dir(dp, "p1-in", "ingest") / "current"
    (current / "health.txt").write_text("sick 99\n")
    (current / "extra.txt").write_text("left behind\n")
    assert rollout("status", "-C", dp.root, "--verify").code == 1

    again = rollout("deploy", "-C", dp.root, "--release", "v1", "--yes", "--json")
    assert again.code == 0, again.out + again.err
    warnings = [e for e in events_of(again.out) if e.get("kind") == "warning"]
    assert len(warnings) == 1, warnings
    reason = str(warnings[0]["detail"]["reason"])  # type: ignore[index]
    assert "p1-in" in reason and "modified health.txt" in reason and "added extra.txt" in reason
    assert (current / "health.txt").read_text() == "healthy 1\n"
    assert not (current / "extra.txt").exists()
    assert dp.health("p1") == "healthy 1"  # restarted and checked on the clean copy
    dp.assert_whole("p1", "v1")
    assert rollout("status", "-C", dp.root, "--verify").code == 0
    views = fleet({"p1": ["edge", "ingest"]}, (e.event for e in open_state(dp.project()).events()))
    assert views["p1"].condition == "healthy"


def test_a_deploy_says_so_when_the_release_it_leaves_drifted(dp: DeployProject, rollout) -> None:
    assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
    (_layer_dir(dp, "p1-gw1", "edge") / "current/status.txt").write_text("ok\n# tuned\n")
    done = rollout("deploy", "-C", dp.root, "--release", "v2", "--yes", "--json")
    assert done.code == 0, done.out + done.err
    warnings = [str(e["detail"]) for e in events_of(done.out) if e.get("kind") == "warning"]
    assert len(warnings) == 1 and "p1-gw1" in warnings[0] and "v1" in warnings[0], warnings
    assert "modified status.txt" in warnings[0]
    dp.assert_whole("p1", "v2")


def test_a_failed_deploy_rolls_back_onto_a_clean_copy_of_the_release_that_drifted(dp: DeployProject, rollout) -> None:
    assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
    current = _layer_dir(dp, "p1-in", "ingest") / "current"
    (current / "health.txt").write_text("sick 99\n")  # the old release's own check would fail on these files
    (current / "extra.txt").write_text("left behind\n")
    failed = rollout("deploy", "-C", dp.root, "--release", "bad-ingest", "--yes", "--json")
    assert failed.code == 1, failed.out + failed.err  # rolled back cleanly, not "needs attention"
    events = events_of(failed.out)
    warnings = [str(e["detail"]) for e in events if e.get("kind") == "warning"]
    assert len(warnings) == 1 and "p1-in" in warnings[0] and "modified health.txt" in warnings[0], warnings
    assert "a rollback to it stages a clean copy" in warnings[0], warnings
    first_change = next(i for i, e in enumerate(events) if e.get("kind") == "layer.staging")
    assert next(i for i, e in enumerate(events) if e.get("kind") == "warning") < first_change, (
        "said only after a change"
    )
    assert any(e.get("kind") == "plant.rolled_back" for e in events), [e.get("kind") for e in events]
    assert (current / "health.txt").read_text() == "healthy 1\n" and not (current / "extra.txt").exists()
    assert dp.health("p1") == "healthy 1"
    dp.assert_whole("p1", "v1")
    assert rollout("status", "-C", dp.root, "--verify").code == 0


def test_a_staged_older_release_that_drifted_is_not_trusted_by_a_rollback(dp: DeployProject, rollout) -> None:
    assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
    assert rollout("deploy", "-C", dp.root, "--release", "v2", "--yes").code == 0
    releases = _layer_dir(dp, "p1-gw1", "edge") / "releases"
    old = next(p for p in releases.iterdir() if "v1" in p.name)
    (old / "status.txt").write_text("tampered\n")
    back = rollout("rollback", "-C", dp.root, "--plant", "p1", "--to", "v1", "--json")
    assert back.code == 0, back.out + back.err
    assert any("p1-gw1" in str(e.get("detail")) for e in events_of(back.out) if e.get("kind") == "warning")
    assert (_layer_dir(dp, "p1-gw1", "edge") / "current/status.txt").read_text() == "ok\n"
    dp.assert_whole("p1", "v1")


def test_a_plant_it_rollback_stages_a_clean_copy_of_the_previous_release_that_drifted(
    dp: DeployProject, rollout
) -> None:
    assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
    assert rollout("deploy", "-C", dp.root, "--release", "v2", "--yes").code == 0
    releases = _layer_dir(dp, "p1-in", "ingest") / "releases"
    old = next(p for p in releases.iterdir() if p.name.startswith("v1-"))
    (old / "health.txt").write_text("sick 99\n")  # v1's own check would fail on these files
    back = rollout("rollback", "-C", dp.root, "--plant", "p1", "--json")  # to what each host ran before
    assert back.code == 0, back.out + back.err
    warnings = [str(e["detail"]) for e in events_of(back.out) if e.get("kind") == "warning"]
    assert len(warnings) == 1 and "p1-in" in warnings[0] and "staging a clean copy" in warnings[0], warnings
    assert (_layer_dir(dp, "p1-in", "ingest") / "current/health.txt").read_text() == "healthy 1\n"
    assert dp.health("p1") == "healthy 1"
    dp.assert_whole("p1", "v1")
    assert rollout("status", "-C", dp.root, "--verify").code == 0


def test_the_console_marks_a_drifted_layer_until_it_is_deployed_again(dp: DeployProject, rollout) -> None:
    assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
    added = rollout("user", "add", "ada", "--role", "admin", "-C", dp.root, "--json")
    token = str(events_of(added.out)[0]["token"])
    (_layer_dir(dp, "p1-gw1", "edge") / "current/status.txt").write_text("tuned\n")
    assert rollout("status", "-C", dp.root, "--verify").code == 1
    project = open_project(dp.root)
    app = create_app(project, open_state(project))
    with TestClient(app, follow_redirects=False) as client:
        layers = {lay["layer"]: lay for lay in _plant(client, token)["layers"]}
        assert layers["edge"]["state"] == "drifted"
        assert layers["edge"]["drift"] == {"p1-gw1": "modified status.txt"}
        assert layers["ingest"]["state"] == "healthy"
        form = client.get("/signin")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf
        signed = client.post("/signin", data={"token": token, "csrf": csrf.group(1), "next": "/"})
        assert signed.status_code == 303
        page = client.get("/plants/p1").text
        assert 'class="state c-drifted">drifted</span>' in page and "p1-gw1: modified status.txt" in page
        assert "c-drifted" in client.get("/").text
        assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
        assert {lay["state"] for lay in _plant(client, token)["layers"]} == {"healthy"}
        app.state.console.runner.join(60)


def _plant(client: TestClient, token: str) -> dict[str, Any]:
    response = client.get("/api/v1/plants/p1", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


@pytest.fixture(scope="session")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    made = Fleet(tmp_path_factory.mktemp("fleet"), 2, first=95).start()
    yield made
    made.stop()


def test_verify_and_a_clean_copy_over_ssh(hosts: Fleet, tmp_path: Path, rollout) -> None:
    hosts.ensure_running()
    dp = build(tmp_path, "ssh", hosts, light=True)
    try:
        assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
        current = _layer_dir(dp, "p1-gw1", "edge") / "current"
        (current / "status.txt").unlink()
        (current / "rogue.sh").write_text("echo hi\n")
        found = rollout("status", "-C", dp.root, "--verify", "--json")
        assert found.code == 1, found.out + found.err
        edge = next(r for r in events_of(found.out) if r["host"] == "p1-gw1")
        assert (edge["modified"], edge["missing"], edge["added"]) == ([], ["status.txt"], ["rogue.sh"])
        again = rollout("deploy", "-C", dp.root, "--release", "v1", "--yes", "--json")
        assert again.code == 0, again.out + again.err
        assert [e for e in events_of(again.out) if e.get("kind") == "warning" and e.get("host") == "p1-gw1"]
        assert (current / "status.txt").read_text() == "ok\n" and not (current / "rogue.sh").exists()
        assert rollout("status", "-C", dp.root, "--verify").code == 0
    finally:
        dp.stop_services()
