"""How the executor reaches a plant's hosts: one transport per host, and the one place a host step runs."""

from __future__ import annotations

import getpass
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

from rollout.config.inventory import Host
from rollout.config.models import LayerConfig
from rollout.config.project import Plant, Project
from rollout.engine import layout
from rollout.engine.layout import HostStep
from rollout.transports.base import CommandResult, Transport, TransportError
from rollout.transports.local import LocalTransport


@dataclass(frozen=True)
class Options:
    """How hosts are reached and who acts."""

    known_hosts: Path | None
    """None: host keys are not verified (an explicit, loudly reported choice)."""
    connect_timeout: float
    command_timeout: float
    operator: str
    assets: bool = True
    """Ask each host what it is and runs (OS, packages) when deploys and rollbacks read it."""


def default_operator() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


class Connections:
    """One transport per host for the whole of a plant's work, closed at the end.

    A host that serves several layers is asked by several threads at once (one per layer):
    it still gets exactly one transport, which is safe to share (see ``Transport``)."""

    def __init__(self, project: Project, plant: Plant, options: Options) -> None:
        self.project, self.plant, self.options = project, plant, options
        self._open: dict[str, Transport] = {}
        self._guard = threading.Lock()

    def get(self, host: Host) -> Transport:
        with self._guard:
            if host.name not in self._open:
                self._open[host.name] = self._make(host)
            return self._open[host.name]

    def run(self, host: Host, step: HostStep, check: bool = True) -> CommandResult:
        """Run one host step on ``host``; with ``check``, a non-zero exit raises TransportError naming it."""
        result = self.get(host).run(step.script, step.timeout, stdin=step.stdin)
        if check and not result.ok:
            raise TransportError(result.host, f"{step.what} failed (exit {result.exit_code}): {result.output()}")
        return result

    def _make(self, host: Host) -> Transport:
        if host.connection == "local":
            return LocalTransport(host.name)
        from rollout.transports.ssh import SshTransport  # paramiko and Fabric: loaded by the first SSH host only

        return SshTransport(
            host.name,
            host.address,
            host.port,
            host.user,
            host.key_file,
            self.options.known_hosts,
            self.options.connect_timeout,
        )

    def root(self, host: Host) -> str:
        if host.root:
            return host.root
        if host.connection == "local":
            return str(self.project.root / self.project.config.hosts_dir / self.plant.name / host.name)
        return "/"

    def dir(self, host: Host, layer: LayerConfig) -> str:
        return layout.layer_dir(self.root(host), layer.target)

    def close(self) -> None:
        with self._guard:
            open_now, self._open = list(self._open.values()), {}
        for transport in open_now:
            transport.close()
