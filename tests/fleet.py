"""A fleet of real OpenSSH servers on loopback addresses, one per simulated plant host.

Each host has its own address (127.<net>.1.N, port 2222; see netplan), host key, configuration, home and
log; clients authenticate with one ed25519 key and verify host keys against a
known_hosts file the fleet writes. Servers are children of the test process and are
stopped by pid (with every session process they forked).

Where a host lives (its address, how its server is started and how to tell it listens) is
three methods a subclass changes: netnskit's plant hosts run the same servers inside a
network namespace. The process-tree helpers (``descendants``, ``kill_tree``, ``alive``) serve
every kit that stops what it started by pid.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from netplan import fleet_address

SSHD = "/usr/sbin/sshd"
PORT = 2222


@dataclass
class SshHost:
    index: int
    address: str
    home: Path
    config: Path
    process: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)
    """Set in every session (sshd's SetEnv), e.g. a PATH that shadows a command; set before ``start``."""

    @property
    def name(self) -> str:
        return f"h{self.index}"


class Fleet:
    def __init__(self, base: Path, count: int, first: int = 1) -> None:
        self.base = base
        self.hosts = [self._host(first + i) for i in range(count)]
        self.client_key = base / "client_key"
        self.known_hosts = base / "known_hosts"

    def _host(self, index: int) -> SshHost:
        home = self.base / f"h{index}"
        return SshHost(index, self.address(index), home, home / "sshd_config")

    def address(self, index: int) -> str:
        """Where host ``index`` listens."""
        return fleet_address(index)

    def server_command(self, host: SshHost) -> list[str]:
        """The argv that runs ``host``'s server in the foreground (its pid is the server's)."""
        return [SSHD, "-D", "-e", "-f", str(host.config)]

    def wait_listening(self, host: SshHost) -> None:
        """Returns once ``host``'s server accepts connections; raises after 15 s."""
        wait_for_port(host.address, PORT, 15)

    def start(self) -> Fleet:
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        self.base.mkdir(parents=True, exist_ok=True)
        keygen(self.client_key)
        authorized = self.base / "authorized_keys"
        authorized.write_text(self.client_key.with_suffix(".pub").read_text())
        lines = []
        for host in self.hosts:
            host.home.mkdir(parents=True, exist_ok=True)
            key = host.home / "host_key"
            keygen(key)
            lines.append(known_hosts_line(host.address, PORT, key))
            host.config.write_text(_config(host, key, authorized))
        self.known_hosts.write_text("".join(lines))
        for host in self.hosts:
            self.launch(host)
        return self

    def launch(self, host: SshHost) -> None:
        ensure_free(host.address, PORT)
        log = open(host.home / "sshd.log", "ab")  # noqa: SIM115 (the server keeps it open)
        host.process = subprocess.Popen(self.server_command(host), stdout=log, stderr=log)
        log.close()
        self.wait_listening(host)

    def kill(self, host: SshHost, sig: int = signal.SIGKILL) -> None:
        """The host drops off the network: its server and every session it forked die."""
        kill_tree(set(_pids_with(str(host.config))), sig)
        if sig != signal.SIGKILL:
            return
        if host.process is not None:
            host.process.wait(timeout=10)
            host.process = None

    def ensure_running(self) -> None:
        for host in self.hosts:
            if host.process is None or host.process.poll() is not None:
                self.kill(host)
                self.launch(host)

    def stop(self) -> None:
        for host in self.hosts:
            self.kill(host)


def ensure_free(address: str, port: int) -> None:
    """Refuse to start a server where another one listens: the new one would fail to bind, and
    the wait for its port would meet the old one (another fleet's host key: "does not match
    known_hosts"). An address this machine does not have (a namespace's) is not checked here."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                message = f"another server listens on {address}:{port}: give this fleet a range of its own"
                raise RuntimeError(message) from None


def keygen(path: Path) -> None:
    """An ed25519 key pair at ``path`` (and ``path``.pub), unless one is there."""
    if not path.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True, timeout=30)


def known_hosts_line(address: str, port: int, key: Path) -> str:
    """The known_hosts line that vouches for the public half of host key ``key`` at ``address``."""
    kind, blob = key.with_suffix(".pub").read_text().split()[:2]
    return f"[{address}]:{port} {kind} {blob}\n"


def _config(host: SshHost, key: Path, authorized: Path) -> str:
    return f"""ListenAddress {host.address}
Port {PORT}
HostKey {key}
PidFile {host.home / "sshd.pid"}
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile {authorized}
StrictModes no
Subsystem sftp internal-sftp
UseDNS no
MaxStartups 100:30:200
MaxSessions 50
SetEnv HOME={host.home}{"".join(f" {k}={v}" for k, v in host.env.items())}
"""


def wait_for_port(address: str, port: int, seconds: float) -> None:
    """Returns once ``address:port`` accepts a connection from this process; raises after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"sshd on {address}:{port} did not start")


def descendants(roots: set[int]) -> set[int]:
    """Every process below ``roots`` (sshd's sessions call setsid, so a process group misses them)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = set(roots)
    while frontier:
        children = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= children
        frontier = children
    return found


def kill_tree(roots: set[int], sig: int = signal.SIGKILL) -> None:
    """Sends ``sig`` to ``roots`` and every process below them (those already gone are skipped)."""
    for pid in sorted(descendants(roots) | roots):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie, dead but not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _pids_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline and "sshd" in cmdline:
            found.append(int(entry.name))
    return found
