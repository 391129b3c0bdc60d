"""The console's actions as background jobs on real plants: plant IT rolls its plant back with
a reason, one job per idempotency key however often it is sent and to however many instances,
a locked plant names its holder, and a release engineer approves and the next wave runs."""

from __future__ import annotations

import re
import shutil
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


def _bundles(made: ConsoleProject, plant: str) -> dict[tuple[str, str], tuple[str | None, str | None]]:
    """(layer, host) -> (release, bundle hash), as each host's own record and manifest say."""
    return {
        key: (r.running.release, r.running.bundle_hash) if r.running else (None, None)
        for key, r in made.dp.states(plant).items()
    }


def _click(client: TestClient, made: ConsoleProject, who: str, form: str, fields: dict[str, str]) -> str:
    """Sign in as ``who``, open berlin's page and send its ``form`` as a browser would (with the
    page's CSRF token and the form's own idempotency key): the key of the job it started."""
    client.cookies.clear()
    signin = client.get("/signin")
    csrf = re.search(r'name="csrf" value="([^"]+)"', signin.text)
    assert csrf
    client.post("/signin", data={"token": made.tokens[who], "csrf": csrf.group(1), "next": "/"})
    page = client.get("/plants/berlin").text
    action = page.split(f'action="/plants/berlin/{form}"', 1)[1].split("</form>", 1)[0]
    hidden = dict(re.findall(r'type="hidden" name="(\w+)" value="([^"]*)"', action))
    assert set(hidden) >= {"csrf", "key"}, action
    response = client.post(f"/plants/berlin/{form}", data={**hidden, **fields}, follow_redirects=False)
    assert response.status_code == 303, response.text[:300]
    return response.headers["location"].removeprefix("/jobs/")


def test_a_restore_clicked_for_a_wiped_host_brings_it_back(client, made) -> None:
    before = _bundles(made, "berlin")
    assert before[("ingest", "berlin-in")][0] == "v2", before
    made.dp.stop_services()
    shutil.rmtree(made.dp.host_roots["berlin-in"])  # the host replaced by an empty machine
    made.dp.host_roots["berlin-in"].mkdir()
    get = lambda url: client.get(url)  # noqa: E731 (the signed-in session reads its jobs)

    checked = wait_job(get, _click(client, made, "bert", "verify", {}))
    assert checked["state"] == "done" and "berlin-in (ingest)" in str(checked["message"]), checked
    drift = client.get("/api/v1/plants/berlin").json()["drift"]
    assert [h["host"] for h in drift["drifted_hosts"]] == ["berlin-in"] and drift["verified"], drift
    page = client.get("/plants/berlin?partial=1").text
    assert "1 drifted" in page and ">berlin-in<" in page.split('id="drifted-hosts"', 1)[1], page

    fields = {"host": "berlin-in", "reason": "disk replaced", "confirm": "berlin"}
    job = wait_job(get, _click(client, made, "bert", "restore", fields))
    assert job["state"] == "done" and "berlin: updated" in str(job["message"]), job
    assert _bundles(made, "berlin") == before, "not the same release and bundle on every host"
    made.dp.assert_whole("berlin", "v2")
    restores = [e for e in history(open_project(made.root), "berlin") if e.record.kind == "restore"]
    assert len(restores) == 1 and restores[0].record.operator == "bert", restores
    assert restores[0].record.spec["host"] == "berlin-in" and restores[0].reason == "disk replaced"

    clean = wait_job(get, _click(client, made, "bert", "verify", {}))
    assert clean["state"] == "done" and str(clean["message"]) == "berlin: every host as released", clean
    assert client.get("/api/v1/plants/berlin").json()["drift"]["drifted_hosts"] == []
    assert "every host as released" in client.get("/plants/berlin").text


def test_a_restore_over_the_api_is_refused_before_a_job_when_the_state_cannot_say(made) -> None:
    overlays = made.root / "overlays/berlin/values.yaml"
    overlays.write_text(overlays.read_text() + "version: 2\n")  # changed since v2 was deployed
    project = open_project(made.root)  # the console reads the project, overlays included, as it starts
    app = create_app(project, open_state(project))
    rita = auth(made, "rita")
    with TestClient(app) as client:
        body = {"key": "restore-nobody-0001", "reason": "try", "host": "nobody"}
        refused = client.post("/api/v1/plants/berlin/restore", json=body, headers=rita)
        assert refused.status_code == 400 and "nobody" in refused.json()["error"]["message"], refused.text
        body = {"key": "restore-overlays-0001", "reason": "try"}
        changed = client.post("/api/v1/plants/berlin/restore", json=body, headers=rita)
        assert changed.status_code == 400 and "changed since" in changed.json()["error"]["message"], changed.text
        assert client.get(f"/api/v1/jobs/{body['key']}", headers=rita).status_code == 404
        asked = {**body, "key": "restore-overlays-0002", "current_overlays": True}
        started = client.post("/api/v1/plants/berlin/restore", json=asked, headers=rita)
        assert started.status_code == 202, started.text
        job = wait_job(lambda url: client.get(url, headers=rita), asked["key"])
        app.state.console.runner.join(60)
    assert job["state"] == "done", job
    restore = [r for r in open_state(project).rollouts() if r.kind == "restore"]
    assert len(restore) == 1 and restore[0].spec["current_overlays"] is True, restore


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
