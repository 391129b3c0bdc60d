"""Agent plants on one machine: real ``rollout serve``, real ``rollout agent`` processes, the hosts
local folders. A staged rollout over agent and direct plants, a failing agent plant rolled back
by its agent, plant IT's rollback reaching the agent, an agent killed -9 and restarted, every
agent token kept to its plant, and the agent's own settings refused with exit 2."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from agentkit import Centre, agent_token, make_agent_plants
from consolekit import run_cli
from servekit import ROLLOUT, Server, self_signed
from test_console_jobs import wait_job

from conftest import commit_all
from deploykit import RELEASES, DeployProject, PlantSpec, build, journal_complete, write_values
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
    code, rows = run_cli("status", "--live", "--json", "-C", dp.root)
    sources = {(str(r["plant"]), str(r.get("source"))) for r in rows if r.get("plant")}
    assert code == 0 and sources == {("p1", "live"), ("p2", "state"), ("p3", "state")}, rows
    assert all(r.get("release") == "v1" for r in rows if r.get("plant") in AGENTS), rows
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


def test_plant_its_rollback_clicked_in_the_console_is_run_by_the_plants_agent(centre: Centre) -> None:
    dp = centre.dp
    assert deploy(dp, "v1")[0] == 0 and deploy(dp, "v2")[0] == 0
    code, lines = run_cli("user", "add", "ivo", "--role", "plant-it", "--plant", "p3", "-C", dp.root, "--json")
    assert code == 0, lines
    headers = {"Authorization": f"Bearer {lines[0]['token']}"}
    body = {"key": "p3-rollback-0001", "reason": "line 2 stopped"}
    with httpx.Client(base_url=centre.server.url, headers=headers, timeout=10) as api:
        assert api.post("/api/v1/plants/p3/rollback", json=body).status_code == 202
        job = wait_job(lambda url: api.get(url), body["key"])
    assert job["state"] == "done" and "rolled back" in str(job["message"]), job
    dp.assert_whole("p3", "v1")
    assert dp.health("p3") == "healthy 1"
    orders = open_state(dp.project()).orders(plant="p3")
    assert [o.action for o in orders] == ["deploy", "deploy", "rollback"] and orders[-1].state == "done", orders
    assert orders[-1].rollout.startswith("rollback-"), "the order is not the console's rollback's"
    journal_complete(dp)


def test_an_agent_killed_mid_plant_and_restarted_brings_the_plant_to_one_whole_release(centre: Centre) -> None:
    dp = centre.dp
    assert deploy(dp, "v1")[0] == 0
    release = slow_release(dp, 5)
    agent = centre.agents["p2"]
    earlier = len(agent.outbox_kinds())
    run = subprocess.Popen(
        [ROLLOUT, "deploy", "-C", str(dp.root), "--release", release, "--yes", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        agent.wait_for("layer.restarting", skip=earlier)
        agent.kill()
        killed = [kind for _, kind in agent.outbox_kinds()[earlier:]]
        assert "plant.done" not in killed and "plant.rolled_back" not in killed, f"killed too late: {killed}"
        agent.start()
        out, _ = run.communicate(timeout=240)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(timeout=10)
    failed = [line for line in out.decode().splitlines() if "preflight_failed" in line or "attention" in line]
    assert run.returncode == 0, "\n".join(failed[-3:]) + agent.log.read_text()[-1500:]
    for plant in PLANTS:
        dp.assert_whole(plant, release)
        assert dp.health(plant) == "healthy 5", plant
    journal_complete(dp)


def test_an_agent_token_reaches_only_its_own_plants_orders_blobs_and_events(centre: Centre, tmp_path: Path) -> None:
    dp = centre.dp
    assert deploy(dp, "v1")[0] == 0
    journal = open_state(dp.project())
    p3_order = journal.orders(plant="p3")[0]
    token = (tmp_path / "p2.token").read_text().strip()
    api = httpx.Client(base_url=f"{centre.server.url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    with api:
        assert api.get("/agent/me").json() == {"name": "agent-p2", "plant": "p2"}
        p3_blob = next(iter(p3_order.body.split('"kit":"')[1].split('"')[:1]))
        refused = {
            "another plant's blob": api.get(f"/agent/blobs/{p3_blob}"),
            "another plant's order": api.post(f"/agent/orders/{p3_order.id}/take"),
            "events into another plant's order": api.post(
                f"/agent/orders/{p3_order.id}/events",
                json={"events": [{"seq": 99, "event": {"kind": "warning", "plant": "p3"}}]},
            ),
            "the console's data": api.get("/plants"),
        }
        for what, response in refused.items():
            assert response.status_code == 403 and "error" in response.json(), (
                what,
                response.status_code,
                response.text,
            )
        own = journal.orders(plant="p2")[0]
        lie = api.post(
            f"/agent/orders/{own.id}/events",
            json={"events": [{"seq": 99, "event": {"kind": "warning", "plant": "p3"}}]},
        )
        assert lie.status_code == 403, lie.text
    assert journal.order_events(p3_order.id, after=98) == [] and journal.order_events(own.id, after=98) == []
    rita = run_cli("user", "add", "rita", "--role", "release-engineer", "-C", dp.root, "--json")[1][0]["token"]
    other = httpx.get(
        f"{centre.server.url}/api/v1/agent/orders/next", headers={"Authorization": f"Bearer {rita}"}, timeout=10
    )
    assert other.status_code == 403, "a release engineer's token took an agent's work"
    page = httpx.get(f"{centre.server.url}/api/v1/plants/p2", headers={"Authorization": f"Bearer {rita}"}, timeout=10)
    assert "run by its agent (agent-p2 on " in str(page.json()["agent"]), page.json().get("agent")
    assert page.json()["agent_unreachable_since"] is None and page.json()["state"] == "healthy", page.json()
    wrong = agent_once(
        tmp_path, {"--plant": "p3", "--server": centre.server.url, "--token-file": str(tmp_path / "p2.token")}
    )
    assert wrong.returncode == 2 and "not 'p3'" in wrong.stderr and "Traceback" not in wrong.stderr, wrong.stderr


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"--server": "ftp://example"}, "--server"),
        ({"--server": "http://user:pw@127.0.0.1:1"}, "--server"),
        ({"--token-file": "/nonexistent/token"}, "cannot read the token file"),
        ({"--plant": "Bad Plant"}, "invalid plant name"),
    ],
)
def test_bad_agent_settings_exit_2_naming_what_is_wrong(tmp_path: Path, change: dict[str, str], expected: str) -> None:
    token = tmp_path / "token"
    token.write_text("rol_x\n")
    args = {"--plant": "p2", "--server": "http://127.0.0.1:1", "--token-file": str(token), **change}
    done = agent_once(tmp_path, args)
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert expected in done.stderr + done.stdout and "Traceback" not in done.stderr, done.stderr


def agent_once(tmp_path: Path, args: dict[str, str]) -> subprocess.CompletedProcess[str]:
    argv = [ROLLOUT, "agent", "--work-dir", str(tmp_path / "elsewhere"), "--poll", "1"]
    for key, value in args.items():
        argv += [key, value]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def test_an_agent_plant_whose_agent_stays_silent_needs_attention_and_leaves_no_lock(tmp_path: Path) -> None:
    """No agent ever comes: the plant is "agent unreachable" first, then needs attention once
    its agent_timeout passes (exit 3); the order is abandoned and the other plants go on."""
    dp = build(tmp_path, "local", None, [PlantSpec(p) for p in PLANTS], light=True, strategy=STRATEGY)
    try:
        make_agent_plants(dp, ["p2"], timeout="4s")
        code, lines = deploy(dp, "v1")
        assert code == 3, lines[-5:]
        assert outcomes(lines) == {"p1": "updated", "p2": "attention", "p3": "updated"}, outcomes(lines)
        kinds = [line["kind"] for line in lines if line.get("plant") == "p2" and line.get("type") == "event"]
        assert "agent.unreachable" in kinds and kinds.index("agent.unreachable") < kinds.index("plant.attention"), kinds
        reason = next(str(line["detail"]["reason"]) for line in lines if line.get("kind") == "plant.attention")  # type: ignore[index]
        assert "agent_timeout of 4 s" in reason, reason
        journal = open_state(dp.project())
        assert [o.state for o in journal.orders(plant="p2")] == ["abandoned"]
        journal_complete(dp)
    finally:
        dp.stop_services()


def test_a_wiped_host_of_an_agent_plant_is_restored_by_its_agent(centre: Centre) -> None:
    dp = centre.dp
    assert deploy(dp, "v1")[0] == 0
    wiped = dp.host_roots["p2-gw1"]
    shutil.rmtree(wiped)
    code, lines = run_cli(
        "restore", "-C", dp.root, "--plant", "p2", "--host", "p2-gw1", "--json", "--reason", "new box"
    )
    assert code == 0, lines[-5:]
    dp.assert_whole("p2", "v1")
    assert [o.action for o in open_state(dp.project()).orders(plant="p2")] == ["deploy", "rebuild"]
    journal_complete(dp)


def slow_release(dp: DeployProject, version: int) -> str:
    """A release whose ingest restart takes seconds: a kill lands inside it."""
    slow = dp.root / "app/ingest/svc.sh.j2"
    slow.write_text(slow.read_text().replace("    restart)\n", "    restart)\n        sleep 3\n", 1))
    write_values(dp.root, {**RELEASES["v2"], "version": version})
    commit_all(dp.root, f"release slow{version}", f"slow{version}")
    return f"slow{version}"


def test_the_orchestrator_killed_while_an_agent_works_resumes_onto_the_same_order(centre: Centre) -> None:
    """kill -9 of `rollout deploy` while p2's agent restarts its ingest: the agent finishes on its
    own; `rollout resume` attaches to that order (no second one), passes on the rest of its
    events and records p2 as updated."""
    dp = centre.dp
    assert deploy(dp, "v1")[0] == 0
    release = slow_release(dp, 6)
    agent = centre.agents["p2"]
    earlier = len(agent.outbox_kinds())
    run = subprocess.Popen(
        [ROLLOUT, "deploy", "-C", str(dp.root), "--release", release, "--yes", "--json"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        agent.wait_for("layer.restarting", skip=earlier)
        run.kill()
    finally:
        run.wait(timeout=30)
    journal = open_state(dp.project())
    rid = journal.rollouts()[-1].id
    order = journal.orders(plant="p2", rollout=rid)[0]
    deadline = time.monotonic() + 60
    while journal.order(order.id).state != "done" and time.monotonic() < deadline:  # type: ignore[union-attr]
        time.sleep(0.1)
    assert journal.order(order.id).state == "done", "the agent did not finish on its own"  # type: ignore[union-attr]
    code, lines = run_cli("resume", rid, "-C", dp.root, "--json")
    assert code == 0, lines[-5:]
    assert outcomes(lines)["p2"] == "updated", outcomes(lines)
    assert [o.id for o in journal.orders(plant="p2", rollout=rid)] == [order.id], "resume published a second order"
    passed = [
        e.event.detail["agent"]["seq"] for e in journal.events(rollout=rid, plant="p2") if "agent" in e.event.detail
    ]
    assert passed == sorted(set(passed)) and passed == list(range(1, len(passed) + 1)), (
        f"events passed on twice or lost: {passed}"
    )
    dp.assert_whole("p2", release)
    journal_complete(dp)


def test_an_agent_reaches_the_centre_over_https_with_its_ca_file_and_refuses_an_untrusted_one(tmp_path: Path) -> None:
    dp = build(tmp_path, "local", None, [PlantSpec(p) for p in PLANTS], light=True, strategy=STRATEGY)
    make_agent_plants(dp, ["p2"])
    address = console_address(31)
    cert, key = self_signed(tmp_path, address)
    found = Centre(dp, Server(dp.root, address, tls=(cert, key)))
    try:
        token = agent_token(dp, "p2", tmp_path)
        untrusted = agent_once(tmp_path, {"--plant": "p2", "--server": found.server.url, "--token-file": str(token)})
        assert untrusted.returncode == 2 and "not trusted" in untrusted.stderr, untrusted.stderr
        found.agent("p2", token, ("--ca-file", str(cert)))
        code, lines = deploy(dp, "v1")
        assert code == 0 and outcomes(lines)["p2"] == "updated", lines[-5:]
        dp.assert_whole("p2", "v1")
    finally:
        found.stop()
        dp.stop_services()


def test_an_agent_that_ran_a_playbook_layer_still_stops_when_told(tmp_path: Path) -> None:
    """ansible-runner takes SIGTERM for itself when it runs on the main thread: the agent runs its
    orders on a thread of their own, so a SIGTERM after a playbook layer still stops it (exit 0)."""
    dp = build(tmp_path, "local", None, [PlantSpec("p1"), PlantSpec("p2")], strategy=STRATEGY)
    make_agent_plants(dp, ["p2"])
    found = Centre(dp, Server(dp.root, console_address(32)))
    try:
        agent = found.agent("p2", agent_token(dp, "p2", tmp_path))
        code, lines = deploy(dp, "v1")
        assert code == 0 and outcomes(lines)["p2"] == "updated", lines[-5:]
        assert any(line.get("layer") == "dashboards" and line.get("plant") == "p2" for line in lines), "no playbook ran"
        assert agent.proc is not None
        agent.proc.send_signal(signal.SIGTERM)
        assert agent.proc.wait(timeout=30) == 0, agent.log.read_text()[-2000:]
        assert "stopping after the order under way" in agent.log.read_text()
    finally:
        found.stop()
        dp.stop_services()
