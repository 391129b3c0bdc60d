"""The console's actions as background jobs on real plants: plant IT rolls its plant back with
a reason, one job per idempotency key however often it is sent and to however many instances,
a locked plant names its holder, and a release engineer approves and the next wave runs."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
from consolekit import ConsoleProject, console_project, wait_job
from fastapi.testclient import TestClient
from pgkit import PgState
from servekit import Server

from netplan import console_address
from rollout.service import history, open_project, open_state
from rollout.web.app import create_app


@pytest.fixture
def made(tmp_path) -> Iterator[ConsoleProject]:
    project = console_project(tmp_path)
    yield project
    project.dp.stop_services()


@pytest.fixture
def client(made: ConsoleProject) -> Iterator[TestClient]:
    project = open_project(made.root)
    app = create_app(project, open_state(project))
    with TestClient(app) as client:
        yield client
        app.state.console.runner.join(60)


def auth(made: ConsoleProject, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {made.tokens[who]}"}


def test_plant_it_rolls_its_plant_back_once_however_often_it_asks(client, made) -> None:
    body = {"key": "berlin-rollback-0001", "reason": "line 3 scanners drop frames"}
    first = client.post("/api/v1/plants/berlin/rollback", json=body, headers=auth(made, "bert"))
    again = client.post("/api/v1/plants/berlin/rollback", json=body, headers=auth(made, "bert"))
    assert first.status_code == again.status_code == 202, first.text
    assert first.json()["new"] is True and again.json()["new"] is False, (first.json(), again.json())
    job = wait_job(lambda url: client.get(url, headers=auth(made, "bert")), body["key"])
    assert job["state"] == "done" and "rolled back" in str(job["message"]), job
    other = client.post("/api/v1/plants/berlin/rollback", json={**body, "to": "v2"}, headers=auth(made, "bert"))
    assert other.status_code == 400 and "another action" in other.text, "one key started two different actions"
    made.dp.assert_whole("berlin", "v1")  # v2 went back to v1 on every host
    made.dp.assert_whole("detroit", "v1")  # and the other plant was not touched
    rollbacks = [e for e in history(open_project(made.root), "berlin") if e.record.kind == "rollback"]
    assert len(rollbacks) == 1, f"one key ran {len(rollbacks)} rollbacks"
    assert rollbacks[0].record.operator == "bert" and rollbacks[0].reason == body["reason"], rollbacks[0]


def test_an_action_on_a_locked_plant_names_its_holder(client, made) -> None:
    journal = open_state(open_project(made.root))
    journal.acquire("berlin", "rollout-held-by-test", "deploy by carla", 600.0, "carla")
    try:
        body = {"key": "berlin-locked-0001", "reason": "try"}
        response = client.post("/api/v1/plants/berlin/rollback", json=body, headers=auth(made, "bert"))
        assert response.status_code == 409, response.text
        assert "carla" in response.json()["error"]["message"], response.text
        assert client.get(f"/api/v1/jobs/{body['key']}", headers=auth(made, "bert")).status_code == 404
    finally:
        journal.release("berlin", "rollout-held-by-test")


def test_a_release_engineer_approves_and_the_next_wave_runs(client, made) -> None:
    body = {"key": "approve-rest-0001", "reason": "canary looked good for a shift"}
    response = client.post(f"/api/v1/rollouts/{made.paused}/approve", json=body, headers=auth(made, "rita"))
    assert response.status_code == 202, response.text
    job = wait_job(lambda url: client.get(url, headers=auth(made, "rita")), body["key"])
    assert job["state"] == "done" and "finished" in str(job["message"]), job
    made.dp.assert_whole("detroit", "v2")
    rollout = client.get(f"/api/v1/rollouts/{made.paused}", headers=auth(made, "rita")).json()
    assert rollout["state"] == "finished" and rollout["waves"][1]["approved_by"] == "rita", rollout


def test_two_instances_on_one_postgresql_state_start_one_job(tmp_path, pg_server, monkeypatch) -> None:
    state = PgState(pg_server, pg_server.create_database())
    monkeypatch.setenv("ROLLOUT_STATE", state.plain_url)
    made = console_project(tmp_path)
    servers: list[Server] = []
    try:
        servers += [Server(made.root, console_address(i), {"ROLLOUT_STATE": state.plain_url}) for i in (11, 12)]
        body = {"key": "two-instances-0001", "reason": "same click, two servers"}
        answers: list[httpx.Response] = []
        go = threading.Barrier(2)

        def send(server: Server) -> None:
            go.wait(timeout=30)
            answers.append(
                httpx.post(
                    f"{server.url}/api/v1/plants/berlin/rollback", json=body, headers=auth(made, "bert"), timeout=30
                )
            )

        threads = [threading.Thread(target=send, args=(s,)) for s in servers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(a.status_code for a in answers) == [202, 202], [a.text for a in answers]
        assert sorted(a.json()["new"] for a in answers) == [False, True], [a.json() for a in answers]
        job = wait_job(lambda url: httpx.get(servers[1].url + url, headers=auth(made, "bert"), timeout=10), body["key"])
        assert job["state"] == "done", job
        seen = [
            httpx.get(f"{s.url}/api/v1/history?plant=berlin", headers=auth(made, "vic"), timeout=10).json()
            for s in servers
        ]
        assert seen[0] == seen[1], "two instances on one state disagree"
        rollbacks = [e for e in seen[0]["history"] if e["kind"] == "rollback"]
        assert len(rollbacks) == 1 and rollbacks[0]["reason"] == body["reason"], rollbacks
        made.dp.assert_whole("berlin", "v1")
    finally:
        for server in servers:
            server.stop()
        made.dp.stop_services()
        state.close()
