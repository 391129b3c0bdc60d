"""The plant-network kit (tests/netnskit.py) holds what the agent's tests will rely on, with real parts:
the centre cannot reach a plant's hosts, a process inside reaches them over real SSH with verified
host keys and reaches a server of the centre on ``center_address``, the WAN cut and mend work, and
teardown leaves no namespace, link, route or process behind, even after a crash."""

from __future__ import annotations

import json
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from fleet import PORT, alive
from netnskit import PlantNet, connects_inside, link_exists, namespaces

# This module's plant indexes: 1 for the shared plant, 2 and 3 for the teardown cases.
SHARED, TORN, CRASHED = 1, 2, 3

TESTS = Path(__file__).resolve().parent
# A test process that builds a plant, starts processes in it, says which, and is then killed.
CRASHING_RUN = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from netnskit import PlantNet
from test_netns import _session_pids
plant = PlantNet(Path(sys.argv[2]), int(sys.argv[3])).start()
print(json.dumps({"name": plant.name, "pids": sorted(_session_pids(plant))}), flush=True)
time.sleep(300)
"""
GET = """
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2])) as response:
    sys.stdout.write(response.read().decode())
"""


@pytest.fixture(scope="module")
def plant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlantNet]:
    with PlantNet(tmp_path_factory.mktemp("plant"), SHARED) as net:
        yield net


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"centre says hello\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def centre(plant: PlantNet) -> Iterator[str]:
    """A real HTTP server in the root namespace, bound to the plant's ``center_address``: its URL."""
    server = ThreadingHTTPServer((plant.center_address, 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{plant.center_address}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _get_inside(plant: PlantNet, url: str, seconds: float = 2.0) -> subprocess.CompletedProcess[str]:
    return plant.run_inside([sys.executable, "-c", GET, url, str(seconds)], timeout=seconds + 10)


def _banner_from_centre(address: str, seconds: float) -> bytes | None:
    """What a server at ``address`` says first to a connection from the root namespace; None if
    the connection fails. An SSH server speaks first ('SSH-2.0-...')."""
    try:
        with socket.create_connection((address, PORT), timeout=seconds) as sock:
            sock.settimeout(seconds)
            try:
                return sock.recv(64)
            except OSError:
                return b""
    except OSError:
        return None


def test_the_centre_cannot_reach_the_plant_hosts(plant: PlantNet) -> None:
    for host in plant.hosts:
        began = time.monotonic()
        assert _banner_from_centre(host.address, 1.0) is None, f"{host.address} answered the centre"
        assert time.monotonic() - began < 3, "a failing connect must fail quickly"
        route = subprocess.run(["ip", "route", "get", host.address], capture_output=True, text=True, timeout=10)
        assert plant.centre_link not in route.stdout, route.stdout
        client = subprocess.run(plant.ssh_argv(host, "true"), capture_output=True, text=True, timeout=30)
        assert client.returncode == 255, client.stdout + client.stderr
    # The same servers are up and listening: it is the network that keeps the centre out.
    assert all(connects_inside(plant.name, host.address, PORT) for host in plant.hosts)


def test_inside_the_plant_hosts_answer_real_ssh_with_verified_host_keys(plant: PlantNet, tmp_path: Path) -> None:
    for host in plant.hosts:
        done = plant.run_inside(plant.ssh_argv(host, 'echo "$HOME"'))
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == str(host.home)
    stranger = tmp_path / "known_hosts"
    stranger.write_text(plant.known_hosts.read_text().splitlines()[1] + "\n")  # host 2's key only
    refused = plant.run_inside(plant.ssh_argv(plant.hosts[0], "true", known_hosts=stranger))
    assert refused.returncode == 255
    assert "Host key verification failed" in refused.stderr, refused.stderr


def test_a_process_started_inside_lives_in_the_namespace(plant: PlantNet) -> None:
    process = plant.popen_inside(["sleep", "60"])
    deadline = time.monotonic() + 10
    while Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")[0] != b"sleep":
        assert time.monotonic() < deadline, "ip netns exec never became sleep"
        time.sleep(0.02)
    namespace = Path(f"/run/netns/{plant.name}").stat().st_ino
    assert Path(f"/proc/{process.pid}/ns/net").stat().st_ino == namespace
    assert Path("/proc/self/ns/net").stat().st_ino != namespace
    assert process.pid in plant.pids()
    process.kill()
    process.wait(timeout=10)


def test_a_centre_server_on_center_address_is_reached_from_inside_until_the_cut(plant: PlantNet, centre: str) -> None:
    port = int(centre.rsplit(":", 1)[1].strip("/"))
    assert _get_inside(plant, centre).stdout == "centre says hello\n"
    plant.cut()
    try:
        began = time.monotonic()
        cut_off = _get_inside(plant, centre, seconds=1.0)
        assert cut_off.returncode != 0, cut_off.stdout
        assert time.monotonic() - began < 10
        # A WAN cut leaves the plant working on its own.
        assert plant.run_inside(plant.ssh_argv(plant.hosts[0], "true")).returncode == 0
        # A connection tried just before the mend leaves an address lookup under way across it.
        assert not connects_inside(plant.name, plant.center_address, port, 0.2)
    finally:
        plant.mend()
    # The link works at once: the first connection after the mend gets through within 0.2 s.
    assert connects_inside(plant.name, plant.center_address, port, 0.0)
    back = _get_inside(plant, centre)
    assert back.returncode == 0 and back.stdout == "centre says hello\n", back.stderr


def _session_pids(plant: PlantNet) -> set[int]:
    """Starts an agent-like process, a long SSH session and an orphan that escaped with setsid."""
    plant.popen_inside(["sleep", "300"])
    plant.popen_inside(plant.ssh_argv(plant.hosts[0], "sleep 300"))
    plant.popen_inside(["sh", "-c", "setsid sleep 300 </dev/null >/dev/null 2>&1 &"]).wait(timeout=10)
    deadline = time.monotonic() + 10
    while len(plant.pids()) < len(plant.hosts) + 5:  # hosts, sleep, ssh, the session's sshd and sleep, the orphan
        assert time.monotonic() < deadline, f"the processes did not all start: {plant.pids()}"
        time.sleep(0.05)
    return plant.pids()


def _assert_gone(plant: PlantNet, pids: set[int]) -> None:
    assert plant.name not in namespaces()
    assert not link_exists(plant.centre_link)
    routes = subprocess.run(["ip", "route", "show", plant.hosts_prefix], capture_output=True, text=True, timeout=10)
    assert routes.stdout.strip() == ""
    assert not [pid for pid in pids if alive(pid)]


def test_teardown_leaves_nothing_behind_even_when_the_test_fails(tmp_path: Path) -> None:
    pids: set[int] = set()
    with pytest.raises(RuntimeError, match="the test failed"), PlantNet(tmp_path, TORN) as net:
        pids = _session_pids(net)
        assert net.name in namespaces() and link_exists(net.centre_link)
        raise RuntimeError("the test failed")
    assert len(pids) >= len(net.hosts) + 5
    _assert_gone(net, pids)


def test_start_clears_what_a_crashed_run_left(tmp_path: Path) -> None:
    log = tmp_path / "crashed.log"
    with open(log, "w") as err:
        run = subprocess.Popen(
            [sys.executable, "-c", CRASHING_RUN, str(TESTS), str(tmp_path / "crashed"), str(CRASHED)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    again = PlantNet(tmp_path / "again", CRASHED)
    try:
        assert run.stdout is not None
        ready, _, _ = select.select([run.stdout], [], [], 60)
        assert ready, "the run never got its plant up"
        left = json.loads(run.stdout.readline() or "null")
        assert left is not None, log.read_text()
        assert left["name"] == again.name
        pids = set(left["pids"])
        run.kill()  # the run crashes: none of its teardown runs
        run.wait(timeout=10)
        assert all(alive(pid) for pid in pids), "the crashed run's plant should outlive it"
        assert again.name in namespaces()
        again.start()
        assert not [pid for pid in pids if alive(pid)], "the crashed run's processes outlived the new start"
        done = again.run_inside(again.ssh_argv(again.hosts[0], "true"))
        assert done.returncode == 0, done.stderr
    finally:
        run.kill()
        run.wait(timeout=10)
        again.stop()
    _assert_gone(again, pids | again.started)
