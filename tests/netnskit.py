"""A plant on its own network: a network namespace with real sshd hosts and a link to the centre.

The agent feature's tests need a plant the centre cannot reach: its hosts and its agent live
inside, and only the agent's connections OUT to the centre get through. ``PlantNet`` builds that
with real parts:

- a network namespace ``ro<NET>p<index>`` (NET from netplan: ``ROLLOUT_TEST_NET`` plus the
  xdist worker, so two suites or workers never share a name or an address);
- a veth pair: ``ro<NET>p<index>-c`` in the root namespace with ``center_address``
  (10.<100+NET>.<index>.1/30), ``ro<NET>p<index>-p`` inside with 10.<100+NET>.<index>.2/30;
- the plant's hosts on addresses 10.<100+NET>.<128+index>.N/32 on the namespace's ``lo``: real
  OpenSSH servers (tests/fleet.py's keys, configuration, known_hosts and pid-based stop), started
  with ``ip netns exec``. The root namespace gets an ``unreachable`` route for that /24: a
  centre has no route to a plant's network, and on these machines the default route leads to a
  gateway that accepts every TCP connection to any address (and then says nothing), so without
  it a connect from the centre would "succeed" to the gateway and test traffic would leave the
  machine;
- ``popen_inside`` / ``run_inside`` for the processes a test starts inside (the agent, clients);
- ``cut`` / ``mend``: the centre's end of the link down and up again (the WAN drops);
- ``stop`` (also on leaving the ``with`` block, whatever happened): every process the kit started
  and every process left in the namespace is killed by pid, then the link, the route and the
  namespace are deleted. ``start`` first clears what a crashed earlier run with the same names
  left.

The plant's end of the link (10.<100+NET>.<index>.2) does answer the centre: there is no
firewall here. A process inside that must not be reachable from the centre binds to a host
address, never to 0.0.0.0. Each test module takes its own plant indexes (0..127), as fleets take
their own host numbers.

What CI needs: root (``ip netns`` needs CAP_SYS_ADMIN and CAP_NET_ADMIN), iproute2 (``ip``) and
openssh-server/openssh-client, all in scripts/setup's packages, and a kernel with network
namespaces and veth (any stock Linux kernel).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from fleet import PORT, Fleet, SshHost, alive, kill_tree
from netplan import NET, plant_centre_address, plant_host_address, plant_hosts_prefix, plant_link_address

IP = shutil.which("ip") or "/usr/sbin/ip"
"""Absolute, so a process started with an environment of its own (no PATH) still finds it."""
RUN_TIMEOUT = 30.0
CLEAR_SECONDS = 10.0

# Run inside the namespace: exit 0 once address:port accepts a connection, 1 after the deadline.
_CONNECT = """
import socket, sys, time
address, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + seconds
while True:
    try:
        socket.create_connection((address, port), timeout=max(0.2, min(1.0, seconds))).close()
        sys.exit(0)
    except OSError:
        if time.monotonic() >= deadline:
            sys.exit(1)
        time.sleep(0.05)
"""


def namespace_name(index: int) -> str:
    """The namespace of plant ``index`` in this test process (short: link names take 15 characters)."""
    return f"ro{NET}p{index}"


def inside(namespace: str, argv: Sequence[str]) -> list[str]:
    """``argv`` run in ``namespace``: ``ip netns exec`` execs it, so the pid stays the program's."""
    return [IP, "netns", "exec", namespace, *argv]


def connects_inside(namespace: str, address: str, port: int, seconds: float = 1.0) -> bool:
    """Whether a process in ``namespace`` gets a TCP connection to ``address:port`` within ``seconds``."""
    argv = inside(namespace, [sys.executable, "-c", _CONNECT, address, str(port), str(seconds)])
    return subprocess.run(argv, capture_output=True, timeout=seconds + RUN_TIMEOUT).returncode == 0


def namespace_pids(namespace: str) -> set[int]:
    """Every process in ``namespace`` now (none if there is no such namespace)."""
    done = _ip("netns", "pids", namespace, check=False)
    return {int(word) for word in done.stdout.split() if word.isdigit()} if done.returncode == 0 else set()


def namespaces() -> set[str]:
    """The names ``ip netns list`` shows."""
    return {line.split()[0] for line in _ip("netns", "list").stdout.splitlines() if line.strip()}


def link_exists(name: str, namespace: str | None = None) -> bool:
    """Whether the network interface ``name`` exists (in the root namespace, or in ``namespace``)."""
    where = ["-n", namespace] if namespace else []
    return _ip(*where, "link", "show", "dev", name, check=False).returncode == 0


class PlantFleet(Fleet):
    """Fleet's sshd hosts, on plant ``plant``'s host addresses inside ``namespace``."""

    def __init__(self, base: Path, namespace: str, plant: int, count: int) -> None:
        self.namespace = namespace
        self.plant = plant
        super().__init__(base, count)

    def address(self, index: int) -> str:
        return plant_host_address(self.plant, index)

    def server_command(self, host: SshHost) -> list[str]:
        return inside(self.namespace, super().server_command(host))

    def wait_listening(self, host: SshHost) -> None:
        if not connects_inside(self.namespace, host.address, PORT, 15):
            raise RuntimeError(f"sshd on {host.address}:{PORT} in {self.namespace} did not start")


class PlantNet:
    """One plant's namespace, link, hosts and processes; a context manager that always cleans up."""

    def __init__(self, base: Path, index: int, hosts: int = 2) -> None:
        self.index = index
        self.name = namespace_name(index)
        self.centre_link = f"{self.name}-c"
        self.plant_link = f"{self.name}-p"
        self.center_address = plant_centre_address(index)
        """Where a process inside reaches a server the test binds in the root namespace."""
        self.link_address = plant_link_address(index)
        self.hosts_prefix = plant_hosts_prefix(index)
        self.base = base
        self.fleet = PlantFleet(base / "fleet", self.name, index, hosts)
        self.started: set[int] = set()
        """The pid of every process the kit started (servers, ``popen_inside``, ``run_inside``)."""
        self._processes: list[subprocess.Popen[bytes]] = []

    @property
    def hosts(self) -> list[SshHost]:
        return self.fleet.hosts

    @property
    def client_key(self) -> Path:
        return self.fleet.client_key

    @property
    def known_hosts(self) -> Path:
        return self.fleet.known_hosts

    def start(self) -> PlantNet:
        """Clears leftovers of an earlier run, then builds the network and starts the hosts."""
        self.base.mkdir(parents=True, exist_ok=True)
        self._clear()
        try:
            self._create_network()
            self.fleet.start()
        except BaseException:
            self.stop()
            raise
        self.started |= {host.process.pid for host in self.hosts if host.process is not None}
        return self

    def __enter__(self) -> PlantNet:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def _create_network(self) -> None:
        _ip("netns", "add", self.name)
        _ip("link", "add", self.centre_link, "type", "veth", "peer", "name", self.plant_link, "netns", self.name)
        _ip("addr", "add", f"{self.center_address}/30", "dev", self.centre_link)
        _ip("link", "set", self.centre_link, "up")
        _ip("route", "add", "unreachable", self.hosts_prefix)
        _ip("-n", self.name, "link", "set", "lo", "up")
        _ip("-n", self.name, "addr", "add", f"{self.link_address}/30", "dev", self.plant_link)
        _ip("-n", self.name, "link", "set", self.plant_link, "up")
        for host in self.hosts:
            _ip("-n", self.name, "addr", "add", f"{host.address}/32", "dev", "lo")

    def popen_inside(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        log: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """Starts ``argv`` inside the plant (as its agent runs), output to ``log`` (default: a file
        under ``base``); ``argv[0]`` is found on ``env``'s PATH. ``stop`` kills it and all below it."""
        log = log or self.base / f"process-{len(self._processes) + 1}.log"
        with open(log, "ab") as out:
            process = subprocess.Popen(
                inside(self.name, argv),
                env=None if env is None else dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self._processes.append(process)
        self.started.add(process.pid)
        return process

    def run_inside(
        self, argv: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = RUN_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        """Runs ``argv`` inside the plant to its end and returns its output; past ``timeout`` seconds
        it is killed with every process below it and ``subprocess.TimeoutExpired`` is raised."""
        process = subprocess.Popen(
            inside(self.name, argv),
            env=None if env is None else dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.started.add(process.pid)
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_tree({process.pid})
            process.communicate(timeout=RUN_TIMEOUT)
            raise
        return subprocess.CompletedProcess(process.args, process.returncode, out, err)

    def ssh_argv(self, host: SshHost, command: str, known_hosts: Path | None = None) -> list[str]:
        """An OpenSSH client logging in to ``host`` as root with the fleet's key, verifying its host key
        against ``known_hosts`` (default: the fleet's), never asking, giving up after 5 s."""
        options = [f"UserKnownHostsFile={known_hosts or self.known_hosts}", "StrictHostKeyChecking=yes"]
        options += ["BatchMode=yes", "ConnectTimeout=5", "IdentitiesOnly=yes"]
        flags = [word for option in options for word in ("-o", option)]
        login = ["-i", str(self.client_key), "-p", str(PORT), f"root@{host.address}"]
        return ["ssh", "-F", "/dev/null", *flags, *login, command]

    def cut(self) -> None:
        """The WAN drops: the centre's end of the link goes down. Inside, the hosts go on serving."""
        _ip("link", "set", self.centre_link, "down")

    def mend(self, seconds: float = 10.0) -> None:
        """The WAN is back: the link goes up; returns once both ends say so, raises after ``seconds``.

        The neighbour (ARP) entries of both ends are flushed: an address lookup begun during the cut
        would otherwise go on at its own pace (a probe a second) after the mend, so the first
        connections then would wait up to a second, or fail with 'No route to host' when its
        probes run out just after the mend."""
        _ip("link", "set", self.centre_link, "up")
        deadline = time.monotonic() + seconds
        while not (self._link_up(None, self.centre_link) and self._link_up(self.name, self.plant_link)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.centre_link} did not come back up in {seconds} s")
            time.sleep(0.05)
        _ip("neigh", "flush", "dev", self.centre_link)
        _ip("-n", self.name, "neigh", "flush", "dev", self.plant_link)

    def pids(self) -> set[int]:
        """Every process in the namespace now, and those the kit started that still run."""
        return namespace_pids(self.name) | {pid for pid in self.started if alive(pid)}

    def stop(self) -> None:
        """Kills every process it started and every process left in the namespace, then deletes the
        link, the route and the namespace. Safe to call twice, and after a start that failed."""
        try:
            self.fleet.stop()
            for process in self._processes:
                kill_tree({process.pid})
                process.wait(timeout=RUN_TIMEOUT)
        finally:
            self._clear()

    def _clear(self) -> None:
        """What a plant of these names leaves (this run's, or a crashed run's) is removed."""
        left = _kill_all_in(self.name, CLEAR_SECONDS)
        _ip("link", "del", self.centre_link, check=False)  # deletes both ends at once
        _ip("route", "del", "unreachable", self.hosts_prefix, check=False)
        _ip("netns", "del", self.name, check=False)
        deadline = time.monotonic() + CLEAR_SECONDS
        while link_exists(self.centre_link) or self.name in namespaces():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: the namespace or {self.centre_link} outlived deletion")
            time.sleep(0.05)
        if left:
            raise RuntimeError(f"{self.name}: processes {sorted(left)} survived SIGKILL")

    @staticmethod
    def _link_up(namespace: str | None, name: str) -> bool:
        where = ["-n", namespace] if namespace else []
        done = _ip(*where, "-j", "link", "show", "dev", name, check=False)
        return done.returncode == 0 and "LOWER_UP" in json.loads(done.stdout)[0].get("flags", [])


def _kill_all_in(namespace: str, seconds: float) -> set[int]:
    """SIGKILLs every process in ``namespace`` until none is left; returns those still there after ``seconds``."""
    deadline = time.monotonic() + seconds
    pids = namespace_pids(namespace)
    while pids and time.monotonic() < deadline:
        kill_tree(pids)
        time.sleep(0.05)
        pids = namespace_pids(namespace)
    return pids


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([IP, *args], capture_output=True, text=True, timeout=RUN_TIMEOUT)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done
