"""Secrets that never leak: an ansible-vault encrypted value deployed end to end, then every
output of every verb, the state database, the logs and the bundles' manifests are searched for
its plain text. It is only in the host's rendered file, which is mode 0600."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from ansible.parsing.vault import VaultLib, VaultSecret

from conftest import MiniProject, commit_all, make_mini
from deploykit import DeployProject, build
from fleet import Fleet
from rollout import service
from rollout.cli import commands
from rollout.config.secrets import Vault, Vaulted
from rollout.config.yamlfile import parse_yaml
from rollout.core.bundle import sha256_json
from rollout.errors import ConfigError, Problem
from rollout.masking import mask, mask_data, remember

PASSWORD = "correct horse battery staple"
CANARY = "canary-5f3a9c1e-pw"
BIN = Path(sys.executable).parent
BROKER = "app/ingest/broker.conf.j2"


def vaulted(plain: str, password: str = PASSWORD, indent: int = 2) -> str:
    """``!vault |`` and its ciphertext, as ``ansible-vault encrypt_string`` writes them (ansible-core's own API)."""
    ciphertext = VaultLib([("default", VaultSecret(password.encode()))]).encrypt(plain).decode()
    return "!vault |\n" + textwrap.indent(ciphertext, " " * indent) + "\n"


def password_file(tmp: Path, password: str = PASSWORD, name: str = "vault.pass") -> Path:
    path = tmp / name
    path.write_text(password + "\n")
    return path


def add_secret(dp: DeployProject, tmp: Path) -> Path:
    """Releases ``plain`` (v2 with a broker.conf without the password) and ``secret`` (broker.conf
    renders the broker password); p1's overlay holds that password encrypted."""
    root = dp.root
    with (root / "app/values.yaml").open("a") as f:
        f.write("broker_password: unset\n")
    (root / BROKER).write_text("user=ingest\n")
    commit_all(root, "release plain", "plain")
    (root / BROKER).write_text("user=ingest\npassword={{ values.broker_password }}\n")
    commit_all(root, "release secret", "secret")
    overlay = root / "overlays/p1/values.yaml"
    overlay.write_text(overlay.read_text() + "broker_password: " + vaulted(CANARY))
    return password_file(tmp)


@pytest.fixture
def secret_project(tmp_path: Path) -> Iterator[tuple[DeployProject, Path]]:
    dp = build(tmp_path / "work", "local", None, light=True)
    yield dp, add_secret(dp, tmp_path)
    dp.stop_services()


def files_holding(root: Path, text: str) -> list[Path]:
    """Every regular file under ``root`` whose bytes hold ``text`` (symlinks not followed)."""
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder, name)
            if path.is_file() and not path.is_symlink() and text.encode() in path.read_bytes():
                found.append(path)
    return found


def test_a_secret_reaches_only_the_hosts_file(
    secret_project: tuple[DeployProject, Path], tmp_path: Path, rollout, monkeypatch: pytest.MonkeyPatch
) -> None:
    dp, pw = secret_project
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    vault = ("--vault-password-file", pw)
    base = ("-C", dp.root)
    outputs: dict[str, str] = {}

    def run(name: str, *args: str | Path, code: int = 0) -> str:
        result = rollout(*args)
        assert result.code == code, (name, result.text)
        outputs[name] = result.text
        return result.text

    run("deploy plain", "deploy", *base, "--release", "plain", *vault, "--yes", "--json")
    run("validate", "validate", *base, "--release", "secret", *vault)
    run("validate json", "validate", *base, "--release", "secret", *vault, "--json")
    run("plan", "plan", *base, "--release", "secret", "--json")
    run("render", "render", *base, "--release", "secret", *vault, "--json")
    explain = run("explain", "render", *base, "--release", "secret", *vault, "--explain", "--plant", "p1")
    explain_json = run("explain json", "render", *base, "-r", "secret", *vault, "--explain", "-p", "p1", "--json")
    diff = run("diff", "diff", *base, "--plant", "p1", "--release", "secret", "--against", "plain", *vault)
    run("diff json", "diff", *base, "--plant", "p1", "--release", "secret", "--against", "plain", *vault, "--json")
    junit = tmp_path / "junit.xml"
    run("deploy", "deploy", *base, "--release", "secret", *vault, "--yes", "--json", "--junit", junit)
    assert dp.health("p1").startswith("healthy"), "the secret release runs"
    run("rollback", "rollback", *base, "--plant", "p1", "--to", "plain", *vault, "--json")
    run("deploy again", "deploy", *base, "--release", "secret", *vault, "--yes")
    for verb in ("status", "history"):
        run(verb, verb, *base)
        run(verb + " json", verb, *base, "--json")

    leaks = {name: text for name, text in outputs.items() if CANARY in text}
    assert not leaks, f"the plain text was shown by: {sorted(leaks)}"
    assert "***" in explain and "broker_password" in explain
    explained = {v["key"]: v["value"] for v in map(json.loads, explain_json.splitlines())}
    assert explained["broker_password"] == "***"
    assert "+password=***" in diff, diff
    assert CANARY not in junit.read_text() and "<testcase" in junit.read_text()

    host_files = files_holding(tmp_path, CANARY)
    assert len(host_files) == 1, host_files
    [held] = host_files
    assert held.name == "broker.conf" and dp.host_roots["p1-in"] in held.parents, held
    assert stat.S_IMODE(held.stat().st_mode) == 0o600
    assert held.read_text() == f"user=ingest\npassword={CANARY}\n"
    assert (held.parent / ".rollout-manifest.json").exists(), "the host's manifest was searched too"
    assert (dp.root / ".rollout/bundles/p1/ingest/manifest.json").exists(), "and the rendered bundle's"


def test_render_out_keeps_the_secret_masked_in_a_0600_file(
    secret_project: tuple[DeployProject, Path], tmp_path: Path, rollout
) -> None:
    dp, pw = secret_project
    out = tmp_path / "bundles"
    for _ in range(2):  # the second time, over the bundle the first wrote
        args = ("-C", dp.root, "-r", "secret", "-p", "p1", "--out", out, "--vault-password-file", pw)
        done = rollout("render", *args)
        assert done.code == 0, done.text
    conf = out / "p1/ingest/files/broker.conf"
    assert conf.read_text() == "user=ingest\npassword=***\n"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    assert stat.S_IMODE((out / "p1/ingest/files/health.txt").stat().st_mode) == 0o644, "files without one stay"
    manifest = json.loads((out / "p1/ingest/manifest.json").read_text())
    entry = next(f for f in manifest["files"] if f["path"] == "broker.conf")
    assert entry["mode"] == "0600"
    assert entry["size"] == len(f"user=ingest\npassword={CANARY}\n"), "the manifest describes the host's file"
    assert files_holding(tmp_path, CANARY) == []


def test_the_environment_variable_gives_the_password(
    secret_project: tuple[DeployProject, Path], rollout, monkeypatch: pytest.MonkeyPatch
) -> None:
    dp, pw = secret_project
    assert rollout("validate", "-C", dp.root, "-r", "secret").code == 2, "no password: bad input"
    monkeypatch.setenv("ROLLOUT_VAULT_PASSWORD_FILE", str(pw))
    assert rollout("validate", "-C", dp.root, "-r", "secret").code == 0


def test_a_project_without_vault_values_needs_no_password(mini: MiniProject, rollout, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-file"
    assert rollout("validate", "-C", mini.root, "--vault-password-file", missing).code == 0
    assert rollout("render", "-C", mini.root, "--out", tmp_path / "b", "--vault-password-file", missing).code == 0


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("wrong", "cannot decrypt with the password in"),
        ("missing", "not found"),
        ("unreadable", "cannot read vault password file"),
        ("none", "no vault password"),
        ("empty", "is empty or too large"),
    ],
)
def test_bad_passwords_are_bad_input_naming_file_and_key(
    case: str, expected: str, tmp_path: Path, rollout, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ROLLOUT_VAULT_PASSWORD_FILE", raising=False)
    project = make_mini(tmp_path / "mini")
    (project.root / "overlays/p1/values.yaml").write_text("port: 9000\nsensors:\n  token: " + vaulted(CANARY, indent=4))
    pw = {
        "wrong": password_file(tmp_path, "not the password", "wrong.pass"),
        "missing": tmp_path / "absent.pass",
        "unreadable": tmp_path,  # a folder: reading it fails
        "empty": password_file(tmp_path, "", "empty.pass"),
    }.get(case)
    args = ["--vault-password-file", pw] if pw is not None else []
    for verb in (["validate"], ["render"], ["diff", "--plant", "p1"], ["render", "--explain", "--plant", "p1"]):
        result = rollout(*verb, "-C", project.root, *args)
        assert result.code == 2, (verb, result.text)
        assert "overlays/p1/values.yaml:3: sensors.token" in result.err, result.err
        assert expected in result.err and "Traceback" not in result.text
        assert CANARY not in result.text


def test_a_secret_in_a_message_or_crash_log_is_masked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    remember("crash-canary-77")
    log = commands._crash_log(RuntimeError("failed on crash-canary-77"))
    text = log.read_text()
    assert "failed on ***" in text and "crash-canary-77" not in text


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    fleet = Fleet(tmp_path_factory.mktemp("fleet"), 2, first=101).start()  # test_deploy's session fleet has 1-8
    yield fleet
    fleet.stop()


def test_over_ssh_the_hosts_file_is_0600(fleet: Fleet, tmp_path: Path, rollout) -> None:
    fleet.ensure_running()
    dp = build(tmp_path / "work", "ssh", fleet, light=True)
    try:
        pw = add_secret(dp, tmp_path)
        result = rollout("deploy", "-C", dp.root, "-r", "secret", "--vault-password-file", pw, "--yes", "--json")
        assert result.code == 0, result.text
        assert CANARY not in result.text
        [held] = files_holding(dp.host_roots["p1-in"], CANARY)
        assert held.name == "broker.conf" and stat.S_IMODE(held.stat().st_mode) == 0o600
    finally:
        dp.stop_services()


LEAKY_CHECK = """      - name: leak
        type: command
        command: "cat current/broker.conf; ! grep -q password current/broker.conf"
        retries: 0
        timeout: 5s
      - name: port
"""


def test_a_check_that_prints_the_secret_is_journaled_masked(
    secret_project: tuple[DeployProject, Path], tmp_path: Path, rollout, monkeypatch: pytest.MonkeyPatch
) -> None:
    dp, pw = secret_project
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    config = dp.root / "rollout.yaml"
    assert "      - name: port\n" in config.read_text()
    vault = ("--vault-password-file", pw)
    assert rollout("deploy", "-C", dp.root, "-r", "plain", *vault, "--yes").code == 0
    config.write_text(config.read_text().replace("      - name: port\n", LEAKY_CHECK, 1))
    failed = rollout("deploy", "-C", dp.root, "-r", "secret", *vault, "--yes", "--json")
    assert failed.code == 1, failed.text
    history = rollout("history", "-C", dp.root, "--json")
    assert CANARY not in failed.text + history.text
    leak = [e for e in map(json.loads, failed.out.splitlines()) if "password=" in json.dumps(e)]
    assert leak and all("password=***" in json.dumps(e) for e in leak), "the check's output, masked"
    held = files_holding(tmp_path, CANARY)
    assert [p.name for p in held] == ["broker.conf"] and dp.host_roots["p1-in"] in held[0].parents, held
    dp.assert_whole(release="plain")


def test_the_loader_keeps_a_vault_value_encrypted_and_shown_as_stars(tmp_path: Path) -> None:
    doc = parse_yaml("a: 1\nsecret: " + vaulted(CANARY), "values.yaml")
    value = doc.data["secret"]
    assert isinstance(value, Vaulted)
    assert (value.file, value.location, value.line) == ("values.yaml", "secret", 2)
    assert CANARY not in value.ciphertext and value.ciphertext.startswith("$ANSIBLE_VAULT;1.1;AES256")
    assert str(value) == repr(value) == f"{value}" == "***"
    assert json.dumps(doc.data, default=str) == '{"a": 1, "secret": "***"}'
    again = parse_yaml("a: 1\nsecret: " + vaulted(CANARY), "values.yaml").data["secret"]
    assert sha256_json(value) != sha256_json(again), "hashes follow the ciphertext: a new one renders again"
    vault = Vault(password_file(tmp_path))
    assert vault.decrypt(value) == CANARY
    assert CANARY not in repr(vault) and PASSWORD not in repr(vault)


def test_what_ansible_vault_encrypt_string_writes_is_read(tmp_path: Path) -> None:
    """The command line's own output (indented under a nested key, as a person pastes it)."""
    pw = password_file(tmp_path)
    done = subprocess.run(
        [str(BIN / "ansible-vault"), "encrypt_string", "--vault-password-file", str(pw), CANARY, "--name", "password"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    text = "broker:\n" + textwrap.indent(done.stdout, "  ")
    value = parse_yaml(text, "overlays/berlin/values.yaml").data["broker"]["password"]
    assert isinstance(value, Vaulted) and value.location == "broker.password" and value.line == 2
    assert Vault(pw).decrypt(value) == CANARY


FORKING_RENDER = """
import os, sys
from pathlib import Path
from rollout.cli import commands
from rollout.core import fanout

pids = Path(sys.argv[1])
real = fanout._attempt
fanout._workers = lambda items: 2  # two plants are enough to fork for


def attempt(work, item):
    with pids.open("a") as f:  # from the forked worker, which inherits this patch
        f.write(f"{os.getpid()}\\n")
    return real(work, item)


fanout._attempt = attempt
print(f"main {os.getpid()}", file=sys.stderr)
sys.exit(commands.run(sys.argv[2:]))
"""


@pytest.mark.parametrize(
    "template",
    ["token={{ values.sensors.token | default('none') }}\n", "{{ fail(values.sensors.token | default('x')) }}\n"],
)
def test_plants_rendered_by_forked_workers_stay_masked(template: str, tmp_path: Path) -> None:
    """Workers decrypt in their own processes; what they send back is masked here all the same.

    In a process of its own: a test process may hold other threads (servers, notifiers of
    earlier tests), and fan_out rightly never forks a process that has them."""
    pids = tmp_path / "pids"
    project = make_mini(tmp_path / "mini")
    project.write("app/edge/token.txt.j2", template)
    project.commit("v1")
    (project.root / "overlays/p1/values.yaml").write_text("port: 9000\nsensors:\n  token: " + vaulted(CANARY, indent=4))
    out = tmp_path / "bundles"
    args = ["render", "-C", str(project.root), "--out", str(out), "--vault-password-file", str(password_file(tmp_path))]
    done = subprocess.run(
        [sys.executable, "-c", FORKING_RENDER, str(pids), *args], capture_output=True, text=True, timeout=300
    )
    assert CANARY not in done.stdout + done.stderr
    if "fail" in template:
        assert done.returncode == 2 and "template refused its values: ***" in done.stderr, done.stderr
    else:
        assert done.returncode == 0, done.stdout + done.stderr
        assert (out / "p1/edge/files/token.txt").read_text() == "token=***\n"
        assert (out / "p2/edge/files/token.txt").read_text() == "token=none\n"
    assert files_holding(tmp_path, CANARY) == []
    main = done.stderr.split("main ", 1)[1].split()[0]
    workers = set(pids.read_text().split())
    assert workers and main not in workers, f"the plants were not rendered in forked workers: {workers}, main {main}"


def test_a_secret_in_the_code_bases_values_renders_for_every_plant(tmp_path: Path) -> None:
    project = make_mini(tmp_path / "mini")
    with (project.root / "app/values.yaml").open("a") as f:
        f.write("api_key: " + vaulted(CANARY))
    project.write("app/ingest/key.txt.j2", "key={{ values.api_key }}\n")
    project.write("app/ingest/shout.txt.j2", "{{ values.api_key | upper }}\n")  # not the plain text as it is
    project.commit("v1")
    loaded = service.open_project(project.root, password_file(tmp_path))
    files = {
        (r.bundle.plant, f.path): f
        for r in service.render(loaded, None, [], None)
        if r.bundle.layer == "ingest"
        for f in r.bundle.files
    }
    for plant in ("p1", "p2", "p3"):
        assert files[(plant, "key.txt")].content == f"key={CANARY}\n".encode()
        assert files[(plant, "key.txt")].mode == 0o600 and files[(plant, "app.conf")].mode == 0o644
        assert files[(plant, "shout.txt")].mode == 0o600, "it reads the secret's key"
    wrong = service.open_project(project.root, password_file(tmp_path, "wrong", "wrong.pass"))
    with pytest.raises(ConfigError) as failed:
        service.validate(wrong, None)
    assert [(p.file, p.location, p.line) for p in failed.value.problems] == [("app/values.yaml@v1", "api_key", 6)]


def test_a_diff_where_only_a_secret_changed_says_so_and_shows_neither(tmp_path: Path, rollout) -> None:
    project = make_mini(tmp_path / "mini")
    base = (project.root / "app/values.yaml").read_text()
    project.write("app/ingest/key.txt.j2", "key={{ values.api_key }}\n")
    for tag, plain in (("v1", "old-canary-1f"), ("v2", "new-canary-2e")):
        (project.root / "app/values.yaml").write_text(base + "api_key: " + vaulted(plain))
        project.commit(tag)
    args = ("-C", project.root, "--plant", "p1", "--vault-password-file", password_file(tmp_path))
    done = rollout("diff", *args, "--release", "v2", "--against", "v1")
    assert done.code == 0, done.text
    assert "ingest/key.txt: a secret changed (shown as ***)" in done.out
    assert "old-canary-1f" not in done.text and "new-canary-2e" not in done.text


def test_masking_replaces_every_secret_longest_first() -> None:
    remember("tok-123")
    remember("tok-123-long")
    assert mask("a tok-123-long b tok-123 c") == "a *** b *** c"
    assert mask_data({"x": ["tok-123", 1, {"y": "tok-123-long!"}]}) == {"x": ["***", 1, {"y": "***!"}]}
    assert Problem("f", message="refused tok-123").render() == "f: refused ***"
