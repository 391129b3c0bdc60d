"""``rollout status`` reads the state (no host asked) and says how fresh each row is; ``--live``
asks the hosts. Hosts moved away behind rollout's back show the difference between the two."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploykit import DeployProject, PlantSpec, build, events_of

HOSTS = {("p1", "p1-gw1"), ("p1", "p1-in"), ("p2", "p2-gw1"), ("p2", "p2-in")}


@pytest.fixture
def dp(tmp_path: Path) -> Iterator[DeployProject]:
    project = build(tmp_path, "local", None, [PlantSpec("p1"), PlantSpec("p2")], light=True)
    yield project
    project.stop_services()


def hosts_of(out: str) -> dict[tuple[str, str], dict[str, object]]:
    return {(str(r["plant"]), str(r["host"])): r for r in events_of(out) if r.get("type") == "host"}


def stamp(text: object) -> float:
    return dt.datetime.fromisoformat(str(text)).timestamp()


def test_status_reads_the_state_with_the_age_of_each_row(dp: DeployProject, rollout) -> None:
    never = hosts_of(rollout("status", "-C", dp.root, "--json").out)
    assert set(never) == HOSTS
    assert all(r["release"] is None and r["condition"] == "never deployed" for r in never.values()), never
    assert all(r["recorded"] is None and r["age_s"] is None for r in never.values()), never
    before = time.time()
    assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
    after = time.time()
    rows = hosts_of(rollout("status", "-C", dp.root, "--json").out)
    assert set(rows) == HOSTS
    for where, row in rows.items():
        assert row["source"] == "state" and row["release"] == "v1" and row["condition"] == "healthy", (where, row)
        # Whole seconds in the output: the record lies within the deploy's second-rounded span.
        assert int(before) <= stamp(row["recorded"]) <= after + 1, (where, row)
        assert isinstance(row["age_s"], float) and row["age_s"] >= 0, row
        assert str(row["rollout"]) and len(str(row["commit"])) == 40, row
    shown = rollout("status", "-C", dp.root)
    assert shown.code == 0 and "as the state records it" in shown.out and "s ago)" in shown.out, shown.out


def test_status_asks_no_host_and_live_asks_them_all(dp: DeployProject, rollout) -> None:
    assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
    dp.stop_services()
    for root in dp.host_roots.values():  # every host wiped behind rollout's back
        shutil.move(root, root.with_name(root.name + ".gone"))
    recorded = hosts_of(rollout("status", "-C", dp.root, "--json").out)
    assert {r["release"] for r in recorded.values()} == {"v1"}, "the state's account, no host asked"
    live = rollout("status", "-C", dp.root, "--live", "--json")
    assert live.code == 0, live.text
    asked = hosts_of(live.out)
    assert set(asked) == HOSTS
    assert all(r["source"] == "live" and r["release"] is None for r in asked.values()), asked


def test_status_follows_a_rollback_and_a_plant_filter(dp: DeployProject, rollout) -> None:
    assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
    assert rollout("deploy", "-C", dp.root, "--release", "v2", "--yes").code == 0
    first = hosts_of(rollout("status", "-C", dp.root, "--plant", "p1", "--json").out)
    assert rollout("rollback", "-C", dp.root, "--plant", "p1").code == 0
    rows = hosts_of(rollout("status", "-C", dp.root, "--plant", "p1", "--json").out)
    assert set(rows) == {("p1", "p1-gw1"), ("p1", "p1-in")}
    for where, row in rows.items():
        assert row["release"] == "v1" and row["condition"] == "rolled back", row
        assert stamp(row["recorded"]) >= stamp(first[where]["recorded"]), (first[where], row)
        assert str(row["rollout"]).startswith("rollback-"), row
    others = hosts_of(rollout("status", "-C", dp.root, "--plant", "p2", "--json").out)
    assert {r["release"] for r in others.values()} == {"v2"}


def test_host_key_choice_without_a_host_to_ask_is_bad_input(dp: DeployProject, rollout) -> None:
    refused = rollout("status", "-C", dp.root, "--insecure-skip-host-key-check")
    assert refused.code == 2 and "--live" in refused.text, refused.text
    unknown = rollout("status", "-C", dp.root, "--plant", "nowhere")
    assert unknown.code == 2 and "nowhere" in unknown.text, unknown.text
