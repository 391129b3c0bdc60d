"""Assets: what every host is and runs, collected from real sshd hosts as deploys and
rollbacks read them (and on demand), kept in the state and asked of it.

Each SSH host's sessions get a PATH (sshd's SetEnv) whose first folder holds a shadow
``dpkg-query`` printing that host's own package list (and noting each call in the host's
``queries.log``), so the figures read back differ per host and can be checked exactly; the
OS, kernel and architecture are the machine's own. ``DPKG_ADMINDIR`` (dpkg's own setting)
points each host at a package database of its own, whose status file stands for the host's
packages changing.
"""

from __future__ import annotations

import platform
import re
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from conftest import Result
from deploykit import DeployProject, build, events_of
from fleet import Fleet
from rollout.core.assets import HostAssets, Probe, carried, compare_versions, from_json, parse_probe, to_json
from rollout.engine import hoststate
from rollout.service import open_state
from rollout.web.app import create_app

Run = Callable[..., Result]

# Per fleet host: its packages. openssl differs, so "older than" picks some hosts only.
PACKAGES = [
    {"openssl": "3.0.11-1~deb12u2", "libc6": "2.36-9+deb12u4", "curl": "7.88.1-10+deb12u5"},
    {"openssl": "3.0.15-1~deb12u1", "libc6": "2.36-9+deb12u10"},
    {"openssl": "1:0.9.8-1", "zlib1g": "1:1.2.13.dfsg-1"},
    {"openssl": "3.0.13-1~deb12u1", "python3": "3.11.2-1+b1", "removed-one": ""},
]
STATUS = {"removed-one": "rc "}  # dpkg lists removed packages with their config files left: not installed


def _shadow(folder: Path, packages: dict[str, str]) -> None:
    """A ``dpkg-query`` that prints ``packages`` as the asset probe asks for them."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = "".join(f"{STATUS.get(name, 'ii ')}\t{name}\t{version}\n" for name, version in packages.items())
    (folder / "packages.tsv").write_text(lines)
    script = folder / "dpkg-query"
    script.write_text(f"#!/bin/sh\necho called >> {folder / 'queries.log'}\ncat {folder / 'packages.tsv'}\n")
    script.chmod(0o755)


def _dpkg_changed(admin: Path, note: str) -> None:
    """The host's package database written anew, as dpkg writes it (a new file renamed into place)."""
    admin.mkdir(parents=True, exist_ok=True)
    (admin / "status-new").write_text(f"# {note}\n")
    (admin / "status-new").rename(admin / "status")


def _queries(folder: Path) -> int:
    log = folder / "queries.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def installed(index: int) -> dict[str, str]:
    return {name: version for name, version in PACKAGES[index].items() if name not in STATUS}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    fleet = Fleet(tmp_path_factory.mktemp("fleet"), 4, first=81)
    for host, packages in zip(fleet.hosts, PACKAGES, strict=True):
        _shadow(host.home / "bin", packages)
        _dpkg_changed(host.home / "dpkg", "first")
        host.env["PATH"] = f"{host.home / 'bin'}:/usr/local/bin:/usr/bin:/bin"
        host.env["DPKG_ADMINDIR"] = str(host.home / "dpkg")
    fleet.start()
    yield fleet
    fleet.stop()


@pytest.fixture
def dp(fleet: Fleet, tmp_path: Path) -> Iterator[DeployProject]:
    fleet.ensure_running()
    project = build(tmp_path, "ssh", fleet, plants=2, light=True)  # p1: hosts 1 and 2, p2: hosts 3 and 4
    yield project
    project.stop_services()


def _assets(rollout: Run, dp: DeployProject, *args: str) -> dict[str, dict[str, object]]:
    done = rollout("assets", "-C", dp.root, "--json", *args)
    assert done.code == 0, done.text
    return {str(r["host"]): r for r in events_of(done.out)}


def _os_release() -> dict[str, str]:
    return {k: v for k, v in platform.freedesktop_os_release().items() if k in ("NAME", "VERSION_ID")}


def test_a_deploy_records_each_hosts_packages_os_and_releases(rollout: Run, dp: DeployProject) -> None:
    assert rollout("assets", "-C", dp.root, "--json").out == "", "assets before any deploy"
    assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
    found = _assets(rollout, dp)
    hosts = {"p1-gw1": 0, "p1-in": 1, "p2-gw1": 2, "p2-in": 3}
    assert sorted(found) == sorted(hosts), found.keys()
    os_ = _os_release()
    for host, index in hosts.items():
        got = found[host]
        assert got["packages"] == installed(index), f"{host} read back {got['packages']}"
        assert got["package_count"] == len(installed(index)) and got["packager"] == "dpkg"
        assert got["os"] == {"name": os_["NAME"], "version": os_.get("VERSION_ID", "")}, got["os"]
        assert got["kernel"] == platform.release() and got["arch"] == platform.machine()
        layer = "edge" if host.endswith("gw1") else "ingest"
        assert got["releases"] == {layer: "v1"} and got["stale"] is False, got


def test_a_host_whose_package_database_is_unchanged_sends_no_packages_yet_keeps_them(
    rollout: Run, dp: DeployProject, fleet: Fleet
) -> None:
    bins = {host: fleet.hosts[i].home / "bin" for i, host in enumerate(("p1-gw1", "p1-in", "p2-gw1", "p2-in"))}
    assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
    first = {r.host: r for r in open_state(dp.project()).assets()}
    calls = {host: _queries(folder) for host, folder in bins.items()}
    # p1-in's list changes but not its database: nothing should ask for the list, so the change is not seen
    _shadow(bins["p1-in"], {"openssl": "9.9.9-1"})
    try:
        assert rollout("deploy", "-C", dp.root, "--release", "v2", "--yes").code == 0
        assert {host: _queries(folder) for host, folder in bins.items()} == calls, "a list was sent unchanged"
        found = _assets(rollout, dp)
        assert found["p1-in"]["packages"] == installed(1) and found["p2-gw1"]["packages"] == installed(2), found
        assert found["p1-in"]["releases"] == {"ingest": "v2"}, found["p1-in"]
        again = {r.host: r for r in open_state(dp.project()).assets()}
        assert all(again[h].collected > first[h].collected for h in first), "the records were not refreshed"
        # now dpkg changes p1-in's database: its list is read again, and only its list
        _dpkg_changed(fleet.hosts[1].home / "dpkg", "openssl upgraded")
        assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
        now = {host: _queries(folder) for host, folder in bins.items()}
        assert now == {**calls, "p1-in": calls["p1-in"] + 1}, now
        found = _assets(rollout, dp)
        assert found["p1-in"]["packages"] == {"openssl": "9.9.9-1"} and found["p2-in"]["packages"] == installed(3)
        # collect always reads every list, whatever the stamps
        assert rollout("assets", "collect", "-C", dp.root).code == 0
        assert {host: _queries(folder) for host, folder in bins.items()} == {h: n + 1 for h, n in now.items()}
    finally:
        _shadow(bins["p1-in"], PACKAGES[1])


def test_which_hosts_run_openssl_older_than_a_version(rollout: Run, dp: DeployProject) -> None:
    assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
    older = _assets(rollout, dp, "--package", "openssl", "--older-than", "3.0.13-1~deb12u1")
    # 1:0.9.8 has an epoch: newer than every 3.x without one
    assert {h: r["version"] for h, r in older.items()} == {"p1-gw1": "3.0.11-1~deb12u2"}, older
    assert sorted(_assets(rollout, dp, "--package", "curl")) == ["p1-gw1"]
    csv = rollout("assets", "-C", dp.root, "--plant", "p2", "--csv")
    assert csv.code == 0, csv.text
    lines = csv.out.splitlines()
    assert lines[0].startswith("plant,host,os,os_version,kernel,arch,package,version")
    assert len(lines) == 1 + len(installed(2)) + len(installed(3)), lines
    assert any(line.startswith("p2,p2-gw1,") and ",zlib1g,1:1.2.13.dfsg-1," in line for line in lines), lines
    refused = rollout("assets", "-C", dp.root, "--older-than", "3.0")
    assert refused.code == 2 and "--package" in refused.text, refused.text


def test_a_rollback_records_the_release_each_host_went_back_to(rollout: Run, dp: DeployProject) -> None:
    assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
    assert rollout("deploy", "-C", dp.root, "--release", "v2", "--yes").code == 0
    assert _assets(rollout, dp)["p1-in"]["releases"] == {"ingest": "v2"}
    assert rollout("rollback", "-C", dp.root, "--plant", "p1").code == 0
    found = _assets(rollout, dp)
    assert found["p1-in"]["releases"] == {"ingest": "v1"} and found["p1-gw1"]["releases"] == {"edge": "v1"}
    assert found["p2-in"]["releases"] == {"ingest": "v2"}, "a rollback of p1 changed p2's record"


def test_collect_reads_the_hosts_now_and_a_stale_record_is_shown_as_stale(
    rollout: Run, dp: DeployProject, fleet: Fleet
) -> None:
    done = rollout("assets", "collect", "-C", dp.root, "--plant", "p1", "--json")
    assert done.code == 0, done.text
    assert sorted(str(r["host"]) for r in events_of(done.out)) == ["p1-gw1", "p1-in"], done.out
    assert _assets(rollout, dp)["p1-in"]["releases"] == {"ingest": None}, "nothing deployed yet"
    journal = open_state(dp.project())
    [gw, inn] = journal.assets("p1")
    journal.put_assets([replace(gw, collected=gw.collected - 25 * 3600)])  # as if collected yesterday
    found = _assets(rollout, dp)
    assert found["p1-gw1"]["stale"] is True and found["p1-in"]["stale"] is False, found
    table = rollout("assets", "-C", dp.root)
    row = next(line for line in table.out.splitlines() if "p1-gw1" in line)
    assert "stale" in row and "stale" not in next(line for line in table.out.splitlines() if "p1-in" in line)
    _shadow(fleet.hosts[1].home / "bin", {"openssl": "3.0.16-1~deb12u1"})  # p1-in was patched
    try:
        assert rollout("assets", "collect", "-C", dp.root).code == 0
        found = _assets(rollout, dp)
        assert found["p1-in"]["packages"] == {"openssl": "3.0.16-1~deb12u1"} and found["p1-gw1"]["stale"] is False
    finally:
        _shadow(fleet.hosts[1].home / "bin", PACKAGES[1])
    assert journal.assets("p1")[1].collected >= inn.collected


def test_a_host_that_does_not_answer_collect_keeps_its_record_and_exits_1(
    rollout: Run, dp: DeployProject, fleet: Fleet
) -> None:
    assert rollout("assets", "collect", "-C", dp.root, "--plant", "p2").code == 0
    before = {r.host: r for r in open_state(dp.project()).assets("p2")}
    fleet.kill(fleet.hosts[3])
    try:
        done = rollout("assets", "collect", "-C", dp.root, "--plant", "p2")
    finally:
        fleet.ensure_running()
    assert done.code == 1 and "p2/p2-in: unreachable" in done.out, done.text
    after = {r.host: r for r in open_state(dp.project()).assets("p2")}
    assert after["p2-in"] == before["p2-in"] and after["p2-gw1"].collected >= before["p2-gw1"].collected


def test_a_deploy_whose_asset_records_cannot_be_kept_still_succeeds_with_a_warning(
    rollout: Run, dp: DeployProject
) -> None:
    open_state(dp.project())  # the state file with its tables
    with closing(sqlite3.connect(dp.root / ".rollout/state.db")) as db:
        db.execute("CREATE TRIGGER no_assets BEFORE INSERT ON assets BEGIN SELECT RAISE(ABORT, 'disk full'); END")
        db.commit()
    done = rollout("deploy", "-C", dp.root, "--release", "v1", "--yes", "--json")
    assert done.code == 0, done.text
    warnings = [e for e in events_of(done.out) if e.get("kind") == "warning"]
    assert any("asset records" in str(w) and "disk full" in str(w) for w in warnings), warnings
    dp.assert_whole("p1", "v1")
    assert open_state(dp.project()).assets() == [], "a refused write left records behind"


def test_the_local_transport_reads_this_machines_packages_and_the_console_shows_them(
    rollout: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dp = build(tmp_path, "local", None, light=True)
    _shadow(tmp_path / "bin", PACKAGES[0])
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/local/bin:/usr/bin:/bin")
    try:
        assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
    finally:
        dp.stop_services()
    found = _assets(rollout, dp)
    assert sorted(found) == ["p1-gw1", "p1-in"]
    assert all(r["packages"] == installed(0) and r["kernel"] == platform.release() for r in found.values())
    journal = open_state(dp.project())
    [gw, inn] = journal.assets("p1")
    journal.put_assets([replace(gw, collected=gw.collected - 25 * 3600)])
    added = rollout("user", "add", "vic", "--role", "viewer", "-C", dp.root, "--json")
    token = str(events_of(added.out)[0]["token"])
    _console_shows(dp, token)


def test_a_host_in_every_layer_has_one_record_with_each_layers_release(rollout: Run, tmp_path: Path) -> None:
    dp = build(tmp_path, "local", None, light=True, single_host=True)
    try:
        assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
    finally:
        dp.stop_services()
    found = _assets(rollout, dp)
    assert list(found) == ["p1-box"] and found["p1-box"]["releases"] == {"edge": "v1", "ingest": "v1"}, found
    steps = [hoststate.read_running("/x", 5, assets=a).script for a in (True, False)]
    assert "dpkg-query" in steps[0] and "dpkg-query" not in steps[1]


def _console_shows(dp: DeployProject, token: str) -> None:
    """The API lists every package; the plant page shows each host in a line, stale in words."""
    project = dp.project()
    app = create_app(project, open_state(project))
    with TestClient(app, follow_redirects=False) as client:
        api = client.get("/api/v1/plants/p1", headers={"Authorization": f"Bearer {token}"})
        assert api.status_code == 200, api.text[:300]
        by_host = {a["host"]: a for a in api.json()["assets"]}
        assert by_host["p1-in"]["packages"] == installed(0) and by_host["p1-in"]["stale"] is False, by_host
        assert by_host["p1-gw1"]["stale"] is True and by_host["p1-gw1"]["releases"] == {"edge": "v1"}
        form = client.get("/signin")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf, "the sign-in form has no CSRF token"
        client.post("/signin", data={"token": token, "csrf": csrf.group(1), "next": "/"})
        page = client.get("/plants/p1")
        assert page.status_code == 200, page.text[:300]
        section = page.text.split("<h2>Assets</h2>", 1)[1].split("<h2>", 1)[0]
        rows = {host: next(r for r in section.split("<tr>") if f">{host}<" in r) for host in ("p1-gw1", "p1-in")}
        assert "stale" in rows["p1-gw1"] and "stale" not in rows["p1-in"], section
        assert f"<td>{platform.release()}</td>" in rows["p1-in"] and f"<td>{len(installed(0))}</td>" in rows["p1-in"]
        app.state.console.runner.join(60)


# -- the pure core ---------------------------------------------------------------------

VERSIONS = [
    ("1.0", "1.0"),
    ("1.0~rc1", "1.0"),
    ("1.0", "1.0-1"),
    ("1:0.1", "2.0"),
    ("3.0.11-1~deb12u2", "3.0.13-1~deb12u1"),
    ("1.2.3", "1.2.10"),
    ("1.0a", "1.0"),
    ("1.0~", "1.0~~"),
    ("2.36-9+deb12u4", "2.36-9+deb12u10"),
    ("1.0+b1", "1.0"),
    ("1.0.", "1.0"),
    ("0:1.0", "1.0"),
    ("1.0-1.1", "1.0-1"),
    ("7.88.1-10+deb12u5", "7.88.1-10+deb12u12"),
    ("2.0-a", "2.0-A"),
    ("1.2.13.dfsg-1", "1.2.13-1"),
    ("10", "9"),
    ("1.0~beta2", "1.0~beta10"),
]


@pytest.mark.parametrize(("a", "b"), VERSIONS)
def test_versions_are_ordered_as_dpkg_orders_them(a: str, b: str) -> None:
    def dpkg(op: str) -> bool:
        return subprocess.run(["dpkg", "--compare-versions", a, op, b], timeout=10).returncode == 0

    expected = -1 if dpkg("lt") else 1 if dpkg("gt") else 0
    assert compare_versions(a, b) == expected and compare_versions(b, a) == -expected, (a, b, expected)


def test_a_probe_without_a_package_manager_still_says_the_os() -> None:
    probe = parse_probe({"os": 'NAME="Alpine Linux"\nVERSION_ID=3.19.1\n# comment\n', "kernel": "6.1\n", "arch": "x\n"})
    assert (probe.os_name, probe.os_version, probe.kernel, probe.arch) == ("Alpine Linux", "3.19.1", "6.1", "x")
    assert probe.packager == "" and dict(probe.packages) == {}
    rpm = parse_probe({"os": "", "rpm": "openssl\t3.0.7-27.el9\nbroken line\n"})
    assert rpm.packager == "rpm" and dict(rpm.packages) == {"openssl": "3.0.7-27.el9"}


def test_the_probe_reads_the_real_dpkg_database_of_this_machine(tmp_path: Path) -> None:
    """The probe's own dpkg-query command, unshadowed: every installed package, none other."""
    step = hoststate.read_running(str(tmp_path / "none"), 30, assets=True)
    done = subprocess.run(["sh", "-c", step.script], capture_output=True, text=True, timeout=30, check=True)
    probe = hoststate.parse_running(done.stdout).assets
    assert probe is not None and probe.packager == "dpkg"
    listed = subprocess.run(
        ["dpkg-query", "-W", "-f", "${db:Status-Status}\t${Package}\t${Version}\n"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.splitlines()
    expected = {p: v for s, p, v in (line.split("\t") for line in listed) if s == "installed"}
    assert dict(probe.packages) == expected and len(expected) > 10, len(probe.packages)
    assert probe.stamp and not probe.unchanged
    # asked again with the stamp it gave, the same script sends no list, and says so
    step = hoststate.read_running(str(tmp_path / "none"), 30, assets=True, known=probe.stamp)
    done = subprocess.run(["sh", "-c", step.script], capture_output=True, text=True, timeout=30, check=True)
    same = hoststate.parse_running(done.stdout).assets
    assert same is not None and same.unchanged and same.packager == "dpkg" and dict(same.packages) == {}
    assert same.stamp == probe.stamp and "\tinstalled" not in done.stdout and len(done.stdout) < 2000


def test_a_record_without_packages_takes_them_only_from_a_record_of_the_same_stamp() -> None:
    old = HostAssets("p", "h", Probe(packager="dpkg", packages={"a": "1"}, stamp="s1"), {"edge": "v1"}, 10.0)
    new = HostAssets("p", "h", Probe(kernel="6.1", packager="dpkg", stamp="s1", unchanged=True), {"edge": "v2"}, 20.0)
    whole = carried(new, old)
    assert whole is not None and dict(whole.probe.packages) == {"a": "1"} and not whole.probe.unchanged
    kept = (whole.probe.kernel, whole.releases, whole.collected, whole.probe.stamp)
    assert kept == ("6.1", {"edge": "v2"}, 20.0, "s1"), kept
    assert carried(new, None) is None, "no record to take the list from"
    assert carried(new, replace(old, probe=replace(old.probe, stamp="s2"))) is None, "another database's list"
    assert carried(new, replace(old, probe=replace(old.probe, packager="rpm"))) is None
    assert carried(old, None) is old, "a record with its list is kept as it is"
    assert from_json(to_json(whole)) == whole, "the stamp is kept with the record"
    parsed = parse_probe({"os": "", "stamp": "123 45\n", "unchanged": "rpm\n"})
    assert (parsed.packager, parsed.unchanged, parsed.stamp, dict(parsed.packages)) == ("rpm", True, "123 45", {})
