"""How a project's hosts are reached for one operator: the options every verb and the console use."""

from __future__ import annotations

from pathlib import Path

from rollout.config.project import Project
from rollout.engine.executor import Options


def project_options(project: Project, operator: str, insecure: bool = False) -> Options:
    """SSH as ``rollout.yaml`` says, host keys checked against its known_hosts unless ``insecure``."""
    ssh = project.config.ssh
    configured = Path(ssh.known_hosts).expanduser()
    known_hosts: Path | None = configured if configured.is_absolute() else project.root / configured
    hosts = None if insecure else known_hosts
    return Options(hosts, ssh.connect_timeout, ssh.command_timeout, operator, project.config.assets.collect)
