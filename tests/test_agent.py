"""Agent plants on one machine: real ``rollout serve``, real ``rollout agent`` processes, the hosts
local folders. A staged rollout over agent and direct plants, a failing agent plant rolled back
by its agent, plant IT's rollback reaching the agent, an agent killed -9 and restarted, every
agent token kept to its plant, and the agent's own settings refused with exit 2."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from agentkit import Centre, agent_token, make_agent_plants
from consolekit import run_cli
from servekit import Server

from deploykit import DeployProject, PlantSpec, build, journal_complete
from netplan import console_address
from rollout.service import open_state

PLANTS = ["p1", "p2", "p3"]
STRATEGY = """  parallelism: 1
  max_failures: 1
  on_failure: continue
  waves:
    - name: all
      select: {remaining: true}
"""
AGENTS = ["p2", "p3"]


@pytest.fixture
def centre(tmp_path: Path) -> Iterator[Centre]:
    dp = build(
        tmp_path,
        "local",
        None,
        [PlantSpec(p, ("fragile",) if p == "p2" else ()) for p in PLANTS],
        light=True,
        strategy=STRATEGY,
    )
    make_agent_plants(dp, AGENTS)
    found = Centre(dp, Server(dp.root, console_address(30)))
    try:
        for plant in AGENTS:
            found.agent(plant, agent_token(dp, plant, tmp_path))
        yield found
    finally:
        found.stop()
        dp.stop_services()


def deploy(dp: DeployProject, release: str) -> tuple[int, list[dict[str, object]]]:
    return run_cli("deploy", "-C", dp.root, "--release", release, "--yes", "--json")


def outcomes(lines: list[dict[str, object]]) -> dict[str, str]:
    last = [line for line in lines if line.get("type") == "rollout"]
    assert last, f"no rollout summary in {lines[-3:]}"
    return {str(k): str(v) for k, v in dict(last[-1]["plants"]).items()}  # type: ignore[arg-type]


def test_a_rollout_over_agent_and_direct_plants_runs_the_agent_plants_through_their_agents(centre: Centre) -> None:
    dp = centre.dp
    code, lines = deploy(dp, "v1")
    assert code == 0, lines[-5:]
    assert outcomes(lines) == {p: "updated" for p in PLANTS}
    for plant in PLANTS:
        dp.assert_whole(plant, "v1")
        assert dp.health(plant) == "healthy 1", plant
    journal = open_state(dp.project())
    for plant in AGENTS:
        passed = [e for e in journal.events(plant=plant) if "agent" in e.event.detail]
        assert passed and {e.event.detail["agent"]["order"].split("/")[1] for e in passed} == {plant}
        orders = journal.orders(plant=plant)
        assert [o.state for o in orders] == ["done"], orders
    assert not [e for e in journal.events(plant="p1") if "agent" in e.event.detail], "p1 is direct"
    journal_complete(dp)


def test_a_failing_agent_plant_is_rolled_back_by_its_agent(centre: Centre) -> None:
    dp = centre.dp
    assert deploy(dp, "v1")[0] == 0
    code, lines = deploy(dp, "bad-fragile")
    assert code == 1, lines[-5:]
    assert outcomes(lines) == {"p1": "updated", "p2": "rolled_back", "p3": "updated"}, outcomes(lines)
    dp.assert_whole("p2", "v1")
    assert dp.health("p2") == "healthy 1" and dp.health("p3") == "healthy 3"
    failed = [line for line in lines if line.get("kind") == "check.result" and line.get("plant") == "p2"]
    assert failed, "the agent's failed check was not passed on to the rollout's output"
    journal_complete(dp)
