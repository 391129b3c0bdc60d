"""``rollout serve`` and ``rollout user`` from the command line: bad settings are exit 2 with a
clear message and nothing served; HTTPS served directly with Secure cookies and the security
headers on every answer."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from consolekit import ConsoleProject, console_project, run_cli
from servekit import Server, self_signed

from netplan import console_address


@pytest.mark.parametrize(
    "args,says",
    [
        (["--listen", "localhost"], "--listen"),
        (["--listen", "127.0.0.1:99999"], "--listen"),
        (["--listen", "berlin:8470"], "--listen"),
        (["--tls-cert", "/nonexistent.crt"], "one without the other"),
        (["--tls-cert", "/nonexistent.crt", "--tls-key", "/nonexistent.key"], "cannot read"),
    ],
)
def test_bad_serve_settings_are_exit_2_and_serve_nothing(rollout, tmp_path, args, says) -> None:
    (tmp_path / "rollout.yaml").write_text("name: x\n")  # never read: the settings are refused first
    result = rollout("serve", "-C", tmp_path, *args)
    assert result.code == 2, result.text
    assert says in result.err and "Traceback" not in result.err, result.err


@pytest.fixture
def made(tmp_path: Path) -> Iterator[ConsoleProject]:
    project = console_project(tmp_path)
    yield project
    project.dp.stop_services()


def test_bad_user_input_is_exit_2(rollout, made) -> None:
    for args, says in (
        (["user", "add", "x y", "--role", "viewer"], "not a user name"),
        (["user", "add", "zed", "--role", "wizard"], "no role"),
        (["user", "add", "zed", "--role", "plant-it"], "needs the plants"),
        (["user", "add", "zed", "--role", "viewer", "--plant", "berlin"], "reaches every plant"),
        (["user", "add", "zed", "--role", "plant-it", "--plant", "atlantis"], "no plant named"),
        (["user", "add", "zed", "--role", "agent", "--plant", "berlin", "--plant", "detroit"], "exactly one"),
        (["user", "add", "bert", "--role", "viewer"], "exists already"),
        (["user", "revoke", "nobody"], "no active user"),
    ):
        result = rollout(*args, "-C", made.root)
        assert result.code == 2 and says in result.err, f"{args}: {result.code} {result.err}"
    listed = rollout("user", "list", "-C", made.root, "--json")
    assert listed.code == 0 and "rol_" not in listed.out, "user list shows a token"
    assert {"bert", "dora", "rita"} <= {line["name"] for line in map(json.loads, listed.out.splitlines())}


def test_https_is_served_directly_with_secure_cookies(tmp_path, made) -> None:
    address = console_address(31)
    server = Server(made.root, address, tls=self_signed(tmp_path, address))
    try:
        with httpx.Client(base_url=server.url, verify=server.verify, timeout=10) as client:
            form = client.get("/signin")
            csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
            assert form.status_code == 200 and csrf
            done = client.post("/signin", data={"token": made.tokens["rita"], "csrf": csrf.group(1)})
            assert done.status_code == 303, done.text
            cookie = next(h for h in done.headers.get_list("set-cookie") if h.startswith("rollout_session="))
            assert "Secure" in cookie and "HttpOnly" in cookie, cookie
            me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {made.tokens['rita']}"})
            assert me.json()["role"] == "release-engineer"
            refused = client.get("/api/v1/me", headers={"Authorization": "Bearer rol_wrong"})
            assert refused.status_code == 401
            for answer in (form, me, refused):  # pages, the API and its errors alike
                assert answer.headers["x-content-type-options"] == "nosniff", answer.headers
                assert answer.headers["x-frame-options"] == "DENY"
                assert answer.headers["referrer-policy"] == "same-origin"
                assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
                assert len(answer.headers.get_list("x-frame-options")) == 1
        with pytest.raises(httpx.ConnectError):
            httpx.get(server.url, timeout=5)  # not trusted without its certificate: verified by default
    finally:
        server.stop()
    assert run_cli("user", "list", "-C", made.root, "--json")[0] == 0
