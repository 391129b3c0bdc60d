"""Agent plants on networks of their own: each agent plant's sshd hosts and its `rollout agent` run in
a network namespace the test makes (tests/netnskit.py), reached from the centre only by the
agent's connections out. Two direct plants run on the loopback SSH fleet. The centre's `rollout
serve` instances (stateless, one state) listen on each plant link's centre end.

One staged rollout over the five plants with a failing agent plant rolled back by its agent;
then the WAN of one agent plant cut in the middle of a layer and mended; the plant still ends
on one whole release and the centre learns of it once the link is back."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from agentkit import agent_token, make_agent_plants, outbox_events
from consolekit import run_cli, wait_job
from servekit import ROLLOUT, Server

from deploykit import SERVICE_PORT, DeployProject, PlantSpec, build, inventory, journal_complete
from fleet import PORT, Fleet
from netnskit import PlantNet, connects_inside
from rollout.service import open_state

DIRECT = ["d1", "d2"]
AGENTS = ["a1", "a2", "a3"]
STRATEGY = """  parallelism: 5
  max_failures: 1
  on_failure: continue
  waves:
    - name: all
      select: {remaining: true}
"""
FIRST_NET = 10
"""This module's plant indexes (netnskit: each module takes its own)."""


@dataclass
class AgentPlant:
    name: str
    net: PlantNet
    server: Server
    token: Path
    work: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [ROLLOUT, "agent", "--plant", self.name, "--server", self.server.url, "--token-file", str(self.token)]
        argv += ["--work-dir", str(self.work), "--poll", "2", "--known-hosts", str(self.net.known_hosts)]
        self.work.parent.mkdir(parents=True, exist_ok=True)
        self.proc = self.net.popen_inside(argv, log=self.work.parent / f"agent-{self.name}.log")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def outbox(self) -> list[str]:
        return [kind for _, kind in outbox_events(self.work)]


@dataclass
class Site:
    dp: DeployProject
    plants: dict[str, AgentPlant]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    found = Fleet(tmp_path_factory.mktemp("direct-fleet"), 2, first=200).start()
    yield found
    found.stop()


@pytest.fixture
def site(tmp_path: Path, fleet: Fleet) -> Iterator[Site]:
    specs = [PlantSpec(p, ("fragile",) if p == "a2" else ()) for p in DIRECT + AGENTS]
    dp = build(tmp_path, "ssh", fleet, specs, light=True, strategy=STRATEGY)
    make_agent_plants(dp, AGENTS, timeout="90s")
    with ExitStack() as stack:
        stack.callback(dp.stop_services)
        plants: dict[str, AgentPlant] = {}
        for i, name in enumerate(AGENTS):
            net = stack.enter_context(PlantNet(tmp_path / f"net-{name}", FIRST_NET + i, hosts=2).start())
            _plant_inventory(dp, name, net, len(DIRECT) + i + 1)
            server = Server(dp.root, net.center_address)
            stack.callback(server.stop)
            plants[name] = AgentPlant(name, net, server, agent_token(dp, name, tmp_path), tmp_path / "agents" / name)
        for found in plants.values():
            found.start()
        yield Site(dp, plants)


def _plant_inventory(dp: DeployProject, plant: str, net: PlantNet, index: int) -> None:
    """The agent plant's hosts are the namespace's: edge and ingest, as the light project has them."""
    hosts = [(f"{plant}-gw1", net.hosts[0].address), (f"{plant}-in", net.hosts[1].address)]
    roots = {name: dp.host_roots[name] for name, _ in hosts}
    (dp.root / "inventories" / f"{plant}.yml").write_text(inventory(plant, hosts, "ssh", roots, net.fleet, light=True))
    dp.health_urls[plant] = f"http://{hosts[1][1]}:{SERVICE_PORT + 20 + index}/health.txt"


def runs(dp: DeployProject, plant: str) -> dict[str, str]:
    """Layer -> the release folder each host's ``current`` points at, read from the host's files."""
    found = {}
    for layer in ("edge", "ingest"):
        host = f"{plant}-gw1" if layer == "edge" else f"{plant}-in"
        current = dp.host_roots[host] / "srv/dp" / layer / "current"
        found[layer] = current.resolve().name if current.is_symlink() else "nothing"
    return found


def on(dp: DeployProject, plant: str, release: str) -> bool:
    return all(folder.startswith(f"{release}-") for folder in runs(dp, plant).values())


def deploy(dp: DeployProject, release: str) -> tuple[int, list[dict[str, object]]]:
    return run_cli("deploy", "-C", dp.root, "--release", release, "--yes", "--json")


def outcomes(lines: list[dict[str, object]]) -> dict[str, str]:
    return {str(k): str(v) for k, v in dict(lines[-1]["plants"]).items()}  # type: ignore[arg-type]


def test_the_centre_cannot_reach_an_agent_plants_hosts_but_its_agent_can(site: Site) -> None:
    for found in site.plants.values():
        host = found.net.hosts[0]
        centre = subprocess.run(found.net.ssh_argv(host, "true"), capture_output=True, text=True, timeout=30)
        assert centre.returncode == 255, f"the centre reached {host.address} of {found.name}: {centre.stderr}"
        assert connects_inside(found.net.name, host.address, PORT, 5), f"{found.name}'s own network cannot reach it"


def test_a_staged_rollout_over_agent_and_direct_plants_with_a_failing_agent_plant_rolled_back(site: Site) -> None:
    dp = site.dp
    code, lines = deploy(dp, "v1")
    assert code == 0, lines[-5:]
    assert outcomes(lines) == {p: "updated" for p in DIRECT + AGENTS}
    assert all(on(dp, p, "v1") for p in DIRECT + AGENTS), {p: runs(dp, p) for p in DIRECT + AGENTS}
    code, lines = deploy(dp, "bad-fragile")
    assert code == 1, lines[-5:]
    assert outcomes(lines) == {**{p: "updated" for p in DIRECT + AGENTS}, "a2": "rolled_back"}, outcomes(lines)
    assert on(dp, "a2", "v1") and on(dp, "a1", "bad-fragile") and on(dp, "d1", "bad-fragile")
    journal = open_state(dp.project())
    passed = [e for e in journal.events(plant="a2", kinds=("rollback.started",)) if "agent" in e.event.detail]
    assert passed, "a2's rollback was not its agent's"
    # plant IT of a3 rolls it back in the console; the order reaches a3's agent through its own link
    code, users = run_cli("user", "add", "ines", "--role", "plant-it", "--plant", "a3", "-C", dp.root, "--json")
    assert code == 0, users
    body = {"key": "a3-rollback-0001", "reason": "line 1 scanner timeouts"}
    headers = {"Authorization": f"Bearer {users[0]['token']}"}
    with httpx.Client(base_url=site.plants["a3"].server.url, headers=headers, timeout=10) as api:
        assert api.post("/api/v1/plants/a3/rollback", json=body).status_code == 202
        job = wait_job(lambda url: api.get(url), body["key"])
    assert job["state"] == "done" and "rolled back" in str(job["message"]), job
    assert on(dp, "a3", "v1"), runs(dp, "a3")
    journal_complete(dp)


def test_a_wan_cut_mid_layer_the_agent_finishes_the_plant_and_the_centre_learns_it_when_the_link_returns(
    site: Site,
) -> None:
    dp = site.dp
    assert deploy(dp, "v1")[0] == 0
    release = slow_release(dp)
    cut = site.plants["a1"]
    earlier = len(cut.outbox())
    run = subprocess.Popen(
        [ROLLOUT, "deploy", "-C", str(dp.root), "--release", release, "--yes", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        until(lambda: "layer.restarting" in cut.outbox()[earlier:], 120, "a1's agent never restarted its ingest")
        cut.net.cut()
        cut.kill()  # and the node loses its agent too, in the middle of the restart
        assert "plant.done" not in cut.outbox()[earlier:], "killed too late"
        cut.start()  # restarted while the link is still down: it goes on from what the hosts run
        until(lambda: "plant.done" in cut.outbox()[earlier:], 120, "a1's agent did not finish the plant while cut off")
        assert on(dp, "a1", release), runs(dp, "a1")
        journal = open_state(dp.project())
        silent = lambda: journal.events(plant="a1", kinds=("agent.unreachable",))  # noqa: E731
        until(lambda: bool(silent()), 60, "the centre never showed a1's agent as unreachable")
        rid = journal.rollouts()[-1].id
        assert not journal.events(rollout=rid, plant="a1", kinds=("plant.done",)), (
            "the centre heard of it through a cut"
        )
        cut.net.mend()
        out, _ = run.communicate(timeout=240)
    finally:
        cut.net.mend()
        if run.poll() is None:
            run.kill()
            run.wait(timeout=10)
    lines = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    assert run.returncode == 0, lines[-5:]
    assert outcomes(lines) == {p: "updated" for p in DIRECT + AGENTS}, outcomes(lines)
    kinds = [str(line["kind"]) for line in lines if line.get("plant") == "a1" and line.get("type") == "event"]
    assert kinds.index("agent.unreachable") < kinds.index("agent.reachable") < kinds.index("plant.done"), kinds
    journal_complete(dp)


def slow_release(dp: DeployProject) -> str:
    from conftest import commit_all
    from deploykit import RELEASES, write_values

    svc = dp.root / "app/ingest/svc.sh.j2"
    svc.write_text(svc.read_text().replace("    restart)\n", "    restart)\n        sleep 4\n", 1))
    write_values(dp.root, {**RELEASES["v2"], "version": 7})
    commit_all(dp.root, "release slow7", "slow7")
    return "slow7"


def until(look, seconds: float, failure: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if look():
            return
        time.sleep(0.05)
    raise AssertionError(failure)
