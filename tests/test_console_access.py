"""The console's access, checked on the server: every route x every role x own plant / other
plant, the status each must get; scoped users never see another plant; tokens, sessions,
CSRF and revocation. The real app (FastAPI's TestClient) on a real SQLite state."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from consolekit import ConsoleProject, console_project, run_cli
from fastapi.testclient import TestClient

from rollout.service import open_project, open_state
from rollout.web.agent_tokens import CHECK_S
from rollout.web.app import create_app

ROLES = ("anon", "ada", "rita", "vic", "bert", "dora", "agnes")
"""No token; admin; release engineer; viewer; plant IT of berlin; plant IT of detroit; berlin's agent."""
READERS = {"ada": 200, "rita": 200, "vic": 200, "bert": 200, "dora": 200}
NO_AGENT = {"anon": 401, "agnes": 403}


def expect(default: dict[str, int], **changes: int) -> dict[str, int]:
    return {**default, **changes}


BERLIN = expect(READERS, dora=403, **NO_AGENT)
DETROIT = expect(READERS, bert=403, **NO_AGENT)
ALL = expect(READERS, **NO_AGENT)
ACT_BERLIN = {"anon": 401, "ada": 400, "rita": 400, "vic": 403, "bert": 400, "dora": 403, "agnes": 403}
ENGINEERS = {"anon": 401, "ada": 400, "rita": 400, "vic": 403, "bert": 403, "dora": 403, "agnes": 403}
ADMINS = {"anon": 401, "ada": 200, "rita": 403, "vic": 403, "bert": 403, "dora": 403, "agnes": 403}
BAD_RELEASE = {"key": "k-authz-table-1", "reason": "table", "to": "no-such-release"}
REASON = {"key": "k-authz-table-2", "reason": "table"}
NO_HOST = {"key": "k-authz-table-3", "reason": "table", "host": "nobody", "current_overlays": True}
BLANK_REASON = {"key": "k-authz-table-4", "reason": " "}
"""Bodies every allowed role gets refused as bad input (400), after the role and plant checks:
the table checks who may ask, and starts no job."""

API_TABLE = [
    ("GET", "/api/v1/plants", None, ALL),
    ("GET", "/api/v1/plants/berlin", None, BERLIN),
    ("GET", "/api/v1/plants/detroit", None, DETROIT),
    ("GET", "/api/v1/plants/atlantis", None, expect(ALL, ada=404, rita=404, vic=404, bert=403, dora=403)),
    ("GET", "/api/v1/rollouts", None, ALL),
    ("GET", "/api/v1/rollouts/{paused}", None, ALL),
    ("GET", "/api/v1/rollouts/no-such-rollout", None, expect(ALL, ada=404, rita=404, vic=404, bert=404, dora=404)),
    ("GET", "/api/v1/events?after=0", None, ALL),
    ("GET", "/api/v1/history", None, ALL),
    ("GET", "/api/v1/history?plant=detroit", None, DETROIT),
    ("GET", "/api/v1/jobs/no-such-job", None, expect(ALL, ada=404, rita=404, vic=404, bert=404, dora=404)),
    ("GET", "/api/v1/me", None, expect(READERS, anon=401, agnes=200)),
    ("POST", "/api/v1/plants/berlin/rollback", BAD_RELEASE, ACT_BERLIN),
    ("POST", "/api/v1/plants/detroit/rollback", BAD_RELEASE, expect(ACT_BERLIN, bert=403, dora=400)),
    ("POST", "/api/v1/plants/berlin/restore", NO_HOST, ACT_BERLIN),
    ("POST", "/api/v1/plants/detroit/restore", NO_HOST, expect(ACT_BERLIN, bert=403, dora=400)),
    ("POST", "/api/v1/plants/atlantis/restore", NO_HOST, expect(ACT_BERLIN, ada=404, rita=404, bert=403)),
    ("POST", "/api/v1/plants/berlin/verify", BLANK_REASON, ACT_BERLIN),
    ("POST", "/api/v1/plants/detroit/verify", BLANK_REASON, expect(ACT_BERLIN, bert=403, dora=400)),
    ("POST", "/api/v1/plants/atlantis/verify", BLANK_REASON, expect(ACT_BERLIN, ada=404, rita=404, bert=403)),
    ("POST", "/api/v1/rollouts/no-such-rollout/approve", REASON, ENGINEERS),
    ("POST", "/api/v1/rollouts/no-such-rollout/resume", REASON, ENGINEERS),
    ("POST", "/api/v1/rollouts/no-such-rollout/abort", REASON, ENGINEERS),
    ("GET", "/api/v1/users", None, ADMINS),
    ("POST", "/api/v1/users", {"name": "x y", "role": "viewer"}, expect(ADMINS, ada=400)),
    ("DELETE", "/api/v1/users/nobody", None, expect(ADMINS, ada=400)),
]
FORM = {"key": "k-authz-form-1", "reason": "table", "confirm": "berlin"}
FORM_TABLE = [
    ("/plants/berlin/rollback", {**FORM, "to": "no-such-release"}, ACT_BERLIN),
    (
        "/plants/detroit/rollback",
        {**FORM, "to": "no-such-release", "confirm": "detroit"},
        expect(ACT_BERLIN, bert=403, dora=400),
    ),
    ("/plants/berlin/restore", {**FORM, "host": "nobody", "current_overlays": "yes"}, ACT_BERLIN),
    ("/plants/berlin/restore", {**FORM, "host": "berlin-in", "confirm": "detroit"}, ACT_BERLIN),
    (
        "/plants/detroit/restore",
        {**FORM, "host": "nobody", "confirm": "detroit"},
        expect(ACT_BERLIN, bert=403, dora=400),
    ),
    ("/plants/berlin/verify", {**FORM, "reason": " "}, ACT_BERLIN),
    ("/plants/detroit/verify", {**FORM, "reason": " "}, expect(ACT_BERLIN, bert=403, dora=400)),
]
"""The forms, as each role's browser posts them (agents by bearer, signing nobody in): every
allowed role gets bad input (400: a release or host that does not exist, the wrong plant's name
typed to confirm, a blank reason), every other a 403, and nobody signed in the sign-in page."""
PAGE_TABLE = [
    ("/", ALL),
    ("/plants/berlin", BERLIN),
    ("/plants/detroit", DETROIT),
    ("/rollouts/{paused}", ALL),
    ("/history", ALL),
    ("/history?plant=detroit", DETROIT),
]


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleProject]:
    project = console_project(tmp_path_factory.mktemp("console"))
    yield project
    project.dp.stop_services()


@pytest.fixture(scope="module")
def client(made: ConsoleProject) -> Iterator[TestClient]:
    project = open_project(made.root)
    app = create_app(project, open_state(project))
    with TestClient(app, follow_redirects=False) as client:
        yield client
        app.state.console.runner.join(60)


def bearer(made: ConsoleProject, role: str) -> dict[str, str]:
    return {} if role == "anon" else {"Authorization": f"Bearer {made.tokens[role]}"}


def signed_in(client: TestClient, made: ConsoleProject, role: str) -> tuple[dict[str, str], str]:
    """Sign in through the form as ``role``, the client keeping its cookie: (its cookies, the
    CSRF token of its pages)."""
    client.cookies.clear()
    form = client.get("/signin")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf, "the sign-in form has no CSRF token"
    done = client.post("/signin", data={"token": made.tokens[role], "csrf": csrf.group(1), "next": "/"})
    assert done.status_code == 303, f"{role} could not sign in: {done.status_code} {done.text[:200]}"
    cookies = dict(client.cookies)
    page = client.get("/")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token, f"{role}'s pages carry no CSRF token"
    return cookies, token.group(1)


@pytest.mark.parametrize("method,path,body,statuses", API_TABLE, ids=[f"{m} {p}" for m, p, _, _ in API_TABLE])
def test_every_api_route_gives_each_role_its_status(client, made, method, path, body, statuses) -> None:
    url = path.format(paused=made.paused)
    for role in ROLES:
        client.cookies.clear()
        response = client.request(method, url, json=body, headers=bearer(made, role))
        assert response.status_code == statuses[role], (
            f"{role}: {method} {url} -> {response.status_code} {response.text[:300]}"
        )
        assert response.headers["content-type"].startswith("application/json"), f"{role}: {url} answered non-JSON"
        if response.status_code >= 400:
            error = response.json()["error"]
            assert error["message"] and "Traceback" not in response.text, f"{role}: {url}: {response.text}"


@pytest.mark.parametrize("path,statuses", PAGE_TABLE, ids=[p for p, _ in PAGE_TABLE])
def test_every_page_gives_each_role_its_status(client, made, path, statuses) -> None:
    url = path.format(paused=made.paused)
    for role in ROLES:
        if role == "anon":
            client.cookies.clear()
            response = client.get(url)
            assert response.status_code == 303 and response.headers["location"].startswith("/signin"), url
            continue
        if role == "agnes":  # an agent's token signs nobody in
            client.cookies.clear()
            response = client.get(url, headers=bearer(made, role))
        else:
            cookies, _ = signed_in(client, made, role)
            response = client.get(url)
        assert response.status_code == statuses[role], f"{role}: GET {url} -> {response.status_code}"


@pytest.mark.parametrize("path,form,statuses", FORM_TABLE, ids=[f"{p} {sorted(f.items())}" for p, f, _ in FORM_TABLE])
def test_every_form_gives_each_role_its_status(client, made, path, form, statuses) -> None:
    for role in ROLES:
        client.cookies.clear()
        if role == "anon":
            response = client.post(path, data=form)
            assert response.status_code == 303 and response.headers["location"].startswith("/signin"), path
            continue
        if role == "agnes":
            response = client.post(path, data=form, headers=bearer(made, role))
        else:
            _, csrf = signed_in(client, made, role)
            response = client.post(path, data={**form, "csrf": csrf})
        assert response.status_code == statuses[role], (
            f"{role}: POST {path} -> {response.status_code} {response.text[:300]}"
        )
    assert open_state(open_project(made.root)).job(form["key"]) is None, "a refused form started a job"


def test_plant_it_of_berlin_never_sees_detroit(client, made) -> None:
    headers = bearer(made, "bert")
    for url in (
        "/api/v1/plants",
        "/api/v1/history",
        "/api/v1/events?after=0",
        "/api/v1/rollouts",
        f"/api/v1/rollouts/{made.paused}",
        "/api/v1/plants/berlin",
    ):
        response = client.get(url, headers=headers)
        assert response.status_code == 200, url
        assert "detroit" not in response.text, f"{url} shows detroit to berlin's plant IT: {response.text[:500]}"
        assert "berlin" in response.text, f"{url} does not show berlin itself"
    cookies, _ = signed_in(client, made, "bert")
    for url in ("/", "/history", f"/rollouts/{made.paused}", "/plants/berlin"):
        page = client.get(url)
        assert page.status_code == 200 and "detroit" not in page.text, f"{url} shows detroit to berlin's plant IT"
    assert "detroit" in client.get("/api/v1/plants", headers=bearer(made, "vic")).text  # a viewer sees it


def test_forms_need_their_sessions_csrf_token(client, made) -> None:
    cookies, csrf = signed_in(client, made, "bert")
    form = {"key": "k-csrf-test-1", "reason": "csrf", "confirm": "berlin", "to": "no-such-release"}
    assert client.post("/plants/berlin/rollback", data=form).status_code == 403
    wrong = client.post("/plants/berlin/rollback", data={**form, "csrf": "0" * 64})
    assert wrong.status_code == 403, "a wrong CSRF token was taken"
    good = client.post("/plants/berlin/rollback", data={**form, "csrf": csrf})
    assert good.status_code == 400 and "no-such-release" in good.text, good.text[:300]
    other = client.post("/plants/detroit/rollback", data={**form, "confirm": "detroit", "csrf": csrf})
    assert other.status_code == 403, "berlin's plant IT acted on detroit"
    api = client.post("/api/v1/plants/berlin/rollback", json=form)
    assert api.status_code == 403 and api.json()["error"]["kind"] == "csrf", (
        "a cookie-borne API call needs X-CSRF-Token"
    )


def test_the_session_cookie_is_httponly_and_strict(client, made) -> None:
    client.cookies.clear()
    form = client.get("/signin")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf
    done = client.post("/signin", data={"token": made.tokens["vic"], "csrf": csrf.group(1)})
    cookie = next(h for h in done.headers.get_list("set-cookie") if h.startswith("rollout_session="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict"), cookie
    assert "Secure" not in cookie, "Secure set on a plain-HTTP console"


def test_a_wrong_token_is_refused_and_each_failure_waits_longer(client, made) -> None:
    from rollout.web.context import Throttle

    client.cookies.clear()
    form = client.get("/signin")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf
    bad = client.post("/signin", data={"token": "rol_not-a-token", "csrf": csrf.group(1)})
    assert bad.status_code == 401 and "not valid" in bad.text
    agent = client.post("/signin", data={"token": made.tokens["agnes"], "csrf": csrf.group(1)})
    assert agent.status_code == 401, "an agent's token opened a session"
    throttle = Throttle()
    delays = []
    for _ in range(4):
        delays.append(throttle.delay("10.0.0.1"))
        throttle.failed("10.0.0.1")
    assert delays == sorted(delays) and delays[-1] > delays[0], delays
    for _ in range(10):
        throttle.failed("10.0.0.1")
    assert throttle.blocked("10.0.0.1") and not throttle.blocked("10.0.0.2")


def test_revoking_a_user_ends_its_token_and_sessions_at_once(client, made) -> None:
    code, lines = run_cli("user", "add", "tmp-eve", "--role", "viewer", "-C", made.root, "--json")
    assert code == 0
    token = str(lines[0]["token"])
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    made.tokens["tmp-eve"] = token
    cookies, _ = signed_in(client, made, "tmp-eve")
    assert client.get("/").status_code == 200
    assert run_cli("user", "revoke", "tmp-eve", "-C", made.root, "--json")[0] == 0
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert client.get("/").status_code == 303, "a revoked user's session still works"


def test_only_the_tokens_hash_is_stored(made) -> None:
    stored = Path(made.root / ".rollout/state.db").read_bytes()
    for token in made.tokens.values():
        assert token.encode() not in stored, "a token is stored in the clear"


def test_bad_input_is_a_json_error_never_a_trace(client, made) -> None:
    headers = bearer(made, "rita")
    for method, url, body in (
        ("GET", "/api/v1/events?after=-3", None),
        ("GET", "/api/v1/nowhere", None),
        ("POST", "/api/v1/plants/berlin/rollback", {"reason": "no key"}),
        ("POST", "/api/v1/plants/berlin/rollback", {"key": "k-bad-layer-1", "reason": "x", "layer": "roof"}),
        ("POST", "/api/v1/rollouts/x/explode", {"key": "k-bad-action", "reason": "x"}),
    ):
        response = client.request(method, url, json=body, headers=headers)
        assert 400 <= response.status_code < 500, f"{url}: {response.status_code}"
        assert response.json()["error"]["message"] and "Traceback" not in response.text


def test_openapi_describes_the_api(client) -> None:
    spec = client.get("/api/v1/openapi.json").json()
    paths = ("/api/v1/plants", "/api/v1/events", "/api/v1/history", "/api/v1/plants/{plant}/rollback")
    for path in (*paths, "/api/v1/plants/{plant}/restore", "/api/v1/plants/{plant}/verify"):
        assert path in spec["paths"], f"{path} is missing from the OpenAPI document"


def test_bad_agent_requests_are_json_errors_and_keep_nothing(client, made) -> None:
    client.cookies.clear()  # an earlier test's session would stand in for "no token"
    agent = bearer(made, "agnes")
    answers = {
        "a wait out of range": (client.get("/api/v1/agent/orders/next?wait=31", headers=agent), 422, "query.wait"),
        "a wait not a number": (client.get("/api/v1/agent/orders/next?wait=soon", headers=agent), 422, "query.wait"),
        "events not a list": (
            client.post("/api/v1/agent/orders/x/events", json={"events": 3}, headers=agent),
            422,
            "body.events",
        ),
        "a body not JSON": (client.post("/api/v1/agent/heartbeat", content=b"{", headers=agent), 422, "body"),
        "an unknown field": (client.post("/api/v1/agent/heartbeat", json={"x": 1}, headers=agent), 422, "body.x"),
        "a wrong method": (client.get("/api/v1/agent/heartbeat", headers=agent), 405, ""),
        "no such route": (client.get("/api/v1/agent/nothing", headers=agent), 404, ""),
        "no token": (client.get("/api/v1/agent/me"), 401, "sign in"),
        "a person's token": (client.get("/api/v1/agent/me", headers=bearer(made, "ada")), 403, ""),
    }
    for what, (answer, status, says) in answers.items():
        assert answer.status_code == status, (what, answer.status_code, answer.text)
        assert says in answer.json()["error"]["message"] and "Traceback" not in answer.text, (what, answer.text)
        assert answer.headers["x-content-type-options"] == "nosniff", what


def test_a_revoked_agent_token_is_refused_within_the_instances_next_check(client, made) -> None:
    added = client.post(
        "/api/v1/users", json={"name": "agent-two", "role": "agent", "plants": ["berlin"]}, headers=bearer(made, "ada")
    )
    assert added.status_code == 201, added.text
    agent = {"Authorization": f"Bearer {added.json()['token']}"}
    assert client.get("/api/v1/agent/me", headers=agent).json() == {"name": "agent-two", "plant": "berlin"}
    assert client.get("/api/v1/agent/me", headers=agent).status_code == 200  # now from the instance's memory
    assert client.delete("/api/v1/users/agent-two", headers=bearer(made, "ada")).status_code == 200
    revoked = time.monotonic()
    while client.get("/api/v1/agent/me", headers=agent).status_code == 200:
        assert time.monotonic() - revoked < 5 * CHECK_S, "a revoked agent token was still let in"
        time.sleep(0.05)
    assert client.post("/api/v1/agent/heartbeat", json={}, headers=agent).status_code == 401


def test_an_admin_adds_and_revokes_a_user_over_the_api(client, made) -> None:
    added = client.post(
        "/api/v1/users", json={"name": "api-ivy", "role": "plant-it", "plants": ["berlin"]}, headers=bearer(made, "ada")
    )
    assert added.status_code == 201, added.text
    token = added.json()["token"]
    assert "token_hash" not in client.get("/api/v1/users", headers=bearer(made, "ada")).text
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json() == {"name": "api-ivy", "role": "plant-it", "plants": ["berlin"]}
    assert client.delete("/api/v1/users/api-ivy", headers=bearer(made, "ada")).status_code == 200
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
