"""A small three-layer project for deploy tests, over the local transport or the SSH fleet.

Layers: ``edge`` (built-in switch, command check), ``ingest`` (a real HTTP service
restarted by its restart step, TCP and HTTP checks), ``dashboards`` (activation and
check by Ansible playbooks). Releases: ``v1``, ``v2`` (good), and ``bad-edge``,
``bad-ingest``, ``bad-restart``, ``bad-board``, each breaking one thing of v2, and
``many``: v2's values with 300 more files in the edge bundle.
"""

from __future__ import annotations

import json
import os
import signal
import textwrap
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from conftest import commit_all
from fleet import PORT, Fleet
from netplan import local_address
from rollout.engine.executor import Options
from rollout.service import HostStatus, open_project, open_state, status

SERVICE_PORT = 18080

ROLLOUT_YAML = """
name: dp
codebase: {{repo: ., path: app, ref: v1}}
ssh: {{known_hosts: {known_hosts}, connect_timeout: 5s, command_timeout: {command_timeout}s}}
preflight: {{min_free_mb: 1}}
layers:
  - name: edge
    target: /srv/dp/edge
    keep_releases: 2
    checks:
      - name: config
        type: command
        command: "grep -qx ok current/status.txt && test ! -e ../../../poison"
        retries: 1
        interval: 100ms
        timeout: 5s
  - name: ingest
    target: /srv/dp/ingest
    restart: {{command: sh current/svc.sh restart, timeout: 15s}}
    stop: {{command: sh current/svc.sh stop, timeout: 15s}}
    checks:
      - name: port
        type: tcp
        port: "{{{{ values.port }}}}"
        retries: 50
        interval: 100ms
        timeout: 2s
      - name: health
        type: http
        url: "http://{{{{ host.address }}}}:{{{{ values.port }}}}/health.txt"
        body_contains: healthy
        retries: 2
        interval: 100ms
        timeout: 2s
{dashboards}strategy:
{strategy}"""

DASHBOARDS = """  - name: dashboards
    target: /srv/dp/dashboards
    activation: {playbook: playbooks/activate.yml, timeout: 120s}
    checks:
      - name: published
        type: playbook
        playbook: playbooks/verify.yml
        retries: 0
        timeout: 120s
"""

ONE_WAVE = """  waves:
    - name: all
      select: {remaining: true}
"""

SVC = """#!/bin/sh
# Serves this release's folder over HTTP on the ingest host; state outlives releases.
set -eu
here=$(cd "$(dirname "$0")" && pwd -P)
state="$here/../../state"
mkdir -p "$state"
pidfile="$state/svc.pid"
# A server that exited is a zombie until whoever adopted it reaps it (seconds, under some
# inits): it holds no port any more, so it counts as stopped.
alive() {
    [ "$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" != Z ] && kill -0 "$1" 2>/dev/null
}
stop() {
    if [ -f "$pidfile" ]; then
        pid=$(cat "$pidfile")
        kill "$pid" 2>/dev/null || true
        i=0
        while alive "$pid" && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
        rm -f "$pidfile"
    fi
}
case "$1" in
    restart)
{%- if not values.restart_ok %}
        echo "this release refuses to start" >&2
        exit 1
{%- endif %}
        stop
        setsid nohup python3 -m http.server {{ values.port }} --bind {{ hosts[0].address }} --directory "$here" \\
            >>"$state/svc.log" 2>&1 </dev/null &
        echo $! >"$pidfile"
        ;;
    stop) stop ;;
esac
"""

ACTIVATE = """
- name: Switch the dashboards
  hosts: dashboards
  gather_facts: false
  tasks:
    - name: Point current at the staged release
      ansible.builtin.shell:
        cmd: ln -sfn "releases/{{ rollout_release_dir }}" .current.next && mv -T .current.next current
        chdir: "{{ rollout_target }}"
"""

VERIFY = """
- name: Verify the dashboards
  hosts: dashboards
  gather_facts: false
  tasks:
    - name: Read the board
      ansible.builtin.slurp:
        src: "{{ rollout_target }}/current/board.json"
      register: board
    - name: The board is for this release and healthy
      ansible.builtin.assert:
        that:
          - (board.content | b64decode | from_json).release == rollout_release
          - (board.content | b64decode | from_json).ok
"""

HEALTH = "{{ 'sick' if values.fragile_release and 'fragile' in plant.tags else values.health }} {{ values.version }}\n"
BOARD = '{"release": {{ release.id | to_json }}, "ok": {{ values.board_ok | to_json }}}\n'

GOOD = {"status": "ok", "health": "healthy", "restart_ok": True, "board_ok": True, "fragile_release": False}
RELEASES = {
    "v1": {**GOOD, "version": 1},
    "v2": {**GOOD, "version": 2},
    "bad-edge": {**GOOD, "version": 3, "status": "broken"},
    "bad-ingest": {**GOOD, "version": 3, "health": "sick"},
    "bad-restart": {**GOOD, "version": 3, "restart_ok": False},
    "bad-board": {**GOOD, "version": 3, "board_ok": False},
    "bad-fragile": {**GOOD, "version": 3, "fragile_release": True},
}


@dataclass
class DeployProject:
    root: Path
    transport: str
    host_roots: dict[str, Path]
    """Host name -> its root folder (where /srv/dp/... lands)."""
    options: Options
    health_urls: dict[str, str] = field(default_factory=dict)
    """Plant -> the URL of its ingest service's health page."""

    def health(self, plant: str) -> str:
        """What the plant's running ingest service says ('healthy <version>')."""
        with urllib.request.urlopen(self.health_urls[plant], timeout=5) as response:
            return str(response.read().decode().strip())

    def project(self):  # type: ignore[no-untyped-def]
        return open_project(self.root)

    def states(self, plant: str = "p1") -> dict[tuple[str, str], HostStatus]:
        return {(r.layer, r.host): r for r in status(self.project(), [plant], self.options)}

    def assert_whole(
        self, plant: str = "p1", release: str | None = None, layers: dict[str, str | None] | None = None
    ) -> None:
        """Every host's own record: each layer runs one whole release (or nothing), as expected."""
        by_layer: dict[str, set[str | None]] = {}
        for (layer, host), row in self.states(plant).items():
            assert row.running is not None, f"{host} unreachable: {row.error}"
            assert row.running.whole, f"{host} {layer}: link, manifest and record disagree: {row.running}"
            by_layer.setdefault(layer, set()).add(row.running.release)
        for layer, found in by_layer.items():
            assert len(found) == 1, f"layer {layer} runs several releases: {found}"
            expected = (layers or {}).get(layer, release)
            assert found == {expected}, f"layer {layer} runs {found}, expected {expected}"

    def stop_services(self) -> None:
        for pidfile in self.root.parent.rglob("svc.pid"):
            try:
                os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
            except (ValueError, ProcessLookupError, OSError):
                pass


def inventory(
    plant: str,
    hosts: list[tuple[str, str]],
    transport: str,
    roots: dict[str, Path],
    fleet: Fleet | None,
    light: bool = False,
    single: bool = False,
) -> str:
    """hosts: (name, address) for edge x2, ingest, dashboards (light: edge, ingest); ``single``:
    one host in every layer's group, as small plants run everything on one box."""
    if single:
        groups = {layer: hosts[:1] for layer in (("edge", "ingest") if light else ("edge", "ingest", "dashboards"))}
    elif light:
        groups = {"edge": hosts[:1], "ingest": hosts[1:2]}
    else:
        groups = {"edge": hosts[:2], "ingest": hosts[2:3], "dashboards": hosts[3:4]}
    lines = ["all:", "  vars:"]
    if transport == "local":
        lines.append("    ansible_connection: local")
    else:
        assert fleet is not None
        lines += [
            "    ansible_connection: ssh",
            f"    ansible_port: {PORT}",
            "    ansible_user: root",
            f"    ansible_ssh_private_key_file: {fleet.client_key}",
        ]
    lines.append("  children:")
    for group, members in groups.items():
        lines.append(f"    {group}:\n      hosts:")
        for name, address in members:
            lines.append(f"        {name}:\n          ansible_host: {address}\n          rollout_root: {roots[name]}")
    return "\n".join(lines) + "\n"


def write_values(root: Path, values: dict[str, object]) -> None:
    text = "".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}\n" for k, v in values.items())
    (root / "app/values.yaml").write_text(text + f"port: {SERVICE_PORT}\n")


@dataclass(frozen=True)
class PlantSpec:
    name: str
    tags: tuple[str, ...] = ()
    windows: str = "always"


def build(
    tmp: Path,
    transport: str,
    fleet: Fleet | None,
    plants: int | list[PlantSpec] = 1,
    light: bool = False,
    strategy: str = ONE_WAVE,
    command_timeout: int = 30,
    single_host: bool = False,
) -> DeployProject:
    """The project; ``light`` drops the playbook layer and gives each plant one edge and one
    ingest host (sharing the fleet's servers, each plant with its own root and port);
    ``single_host`` puts one host of each plant in every layer."""
    root = tmp / "dp"
    known_hosts = fleet.known_hosts if fleet else tmp / "known_hosts"
    specs = [PlantSpec(f"p{i}") for i in range(1, plants + 1)] if isinstance(plants, int) else plants
    files = {
        "rollout.yaml": ROLLOUT_YAML.format(
            known_hosts=known_hosts,
            dashboards="" if light else DASHBOARDS,
            strategy=strategy,
            command_timeout=command_timeout,
        ),
        "app/edge/status.txt.j2": "{{ values.status }}\n",
        "app/ingest/health.txt.j2": HEALTH,
        "app/ingest/svc.sh.j2": SVC,
        "playbooks/activate.yml": ACTIVATE,
        "playbooks/verify.yml": VERIFY,
    }
    if not light:
        files["app/dashboards/board.json.j2"] = BOARD
    roots: dict[str, Path] = {}
    urls: dict[str, str] = {}
    for index, spec in enumerate(specs, start=1):
        hosts = _hosts(spec.name, index, transport, fleet, light)
        if single_host:
            hosts = [(f"{spec.name}-box", hosts[0][1])]
        for name, _ in hosts:
            roots[name] = tmp / "roots" / name
        ingest = hosts[0][1] if single_host else hosts[1][1] if light else hosts[2][1]
        port = SERVICE_PORT + 20 + index if light or single_host else SERVICE_PORT
        urls[spec.name] = f"http://{ingest}:{port}/health.txt"
        files[f"plants/{spec.name}.yaml"] = (
            f"archetype: std\ntimezone: UTC\ntags: [{', '.join(spec.tags)}]\nwindows: {spec.windows}\n"
        )
        files[f"inventories/{spec.name}.yml"] = inventory(spec.name, hosts, transport, roots, fleet, light, single_host)
        if light or single_host:
            files[f"overlays/{spec.name}/values.yaml"] = f"port: {SERVICE_PORT + 20 + index}\n"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n") if rel.endswith(".yml") else text)
    for tag, values in RELEASES.items():
        write_values(root, values)
        commit_all(root, f"release {tag}", tag)
    write_values(root, RELEASES["v2"])
    many = root / "app/edge/many"  # a bundle whose manifest is far longer than any message
    many.mkdir()
    for i in range(300):
        (many / f"sensor-{i:03d}.yaml").write_text(f"sensor: {i}\n")
    commit_all(root, "release many", "many")
    options = Options(known_hosts if fleet else None, 5.0, float(command_timeout), "tester@test")
    return DeployProject(root, transport, roots, options, urls)


def _hosts(plant: str, index: int, transport: str, fleet: Fleet | None, light: bool) -> list[tuple[str, str]]:
    names = (
        [f"{plant}-gw1", f"{plant}-in"] if light else [f"{plant}-gw1", f"{plant}-gw2", f"{plant}-in", f"{plant}-dash"]
    )
    if transport == "local":
        return [(name, local_address(10 * index + i)) for i, name in enumerate(names, start=1)]
    assert fleet is not None
    count = len(fleet.hosts)
    first = (len(names) * (index - 1)) % count
    return [(name, fleet.hosts[(first + i) % count].address) for i, name in enumerate(names)]


def events_of(out: str) -> list[dict[str, object]]:
    """The JSON lines of a command's output."""
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def journal_complete(dp: DeployProject) -> None:
    """Every rollout ended, every plant it started has a terminal event, and no lock is left."""
    journal = open_state(dp.project())
    left = [f"{lock.plant}: {lock.describe()}" for lock in journal.locks()]
    assert not left, f"locks left behind: {left}"
    for record in journal.rollouts():
        kinds = [e.event.kind for e in journal.events(rollout=record.id)]
        assert kinds[0] == "rollout.created", (record.id, kinds[:3])
        ended = {"rollout.finished", "rollout.halted", "rollout.aborted"} & set(kinds)
        assert ended, (record.id, "never ended", kinds[-5:])
        started = {e.event.plant for e in journal.events(rollout=record.id) if e.event.kind == "plant.started"}
        for plant in started:
            mine = [e.event.kind for e in journal.events(rollout=record.id, plant=plant)]
            assert any(
                k in mine for k in ("plant.done", "plant.rolled_back", "plant.attention", "plant.preflight_failed")
            ), (record.id, plant, "no outcome", mine[-5:])
