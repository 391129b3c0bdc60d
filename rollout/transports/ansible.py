"""Ansible playbooks through ansible-runner, against a plant's own inventory."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rollout.transports.base import trim


@dataclass(frozen=True)
class PlaybookResult:
    rc: int
    status: str
    """ansible-runner's word: successful, failed, timeout, canceled."""
    failed: tuple[str, ...]
    unreachable: tuple[str, ...]
    output: str
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.rc == 0 and self.status == "successful"

    def summary(self) -> str:
        """The lines that say what went wrong (Ansible's 'fatal:' lines), else the output's end."""
        marks = ("fatal:", "ERROR!")
        lines = [line.strip()[:400] for line in self.output.splitlines() if line.lstrip().startswith(marks)]
        return " | ".join(lines[:5]) if lines else self.output[-400:]


def run_playbook(
    playbook: Path,
    inventory: Path,
    host_vars: dict[str, dict[str, Any]],
    extravars: dict[str, Any],
    known_hosts: Path | None,
    timeout: float,
) -> PlaybookResult:
    """Run ``playbook`` limited to the hosts in ``host_vars``, each given its own variables.

    The plant's inventory is used unchanged; a second inventory source adds the per-host
    variables (where the layer lives on that host). Ansible's state stays in a private
    folder that is removed afterwards.
    """
    import ansible_runner  # here, not at the top: only a playbook step pays for loading Ansible's runner

    private = Path(tempfile.mkdtemp(prefix="rollout-ansible-"))
    started = time.monotonic()
    try:
        extra_inventory = private / "rollout-vars.yml"
        extra_inventory.write_text(yaml.safe_dump({"all": {"hosts": host_vars}}, sort_keys=True))
        try:
            runner = ansible_runner.run(
                private_data_dir=str(private),
                playbook=str(playbook.resolve()),
                inventory=[str(inventory.resolve()), str(extra_inventory)],
                limit=",".join(sorted(host_vars)),
                extravars=extravars,
                envvars=_environment(private, known_hosts),
                quiet=True,
                timeout=max(1, int(timeout)),
                suppress_env_files=True,
            )
        except Exception as exc:  # ansible-runner raises what its subprocess layer raises
            elapsed = time.monotonic() - started
            return PlaybookResult(-1, "error", (), (), f"ansible-runner could not run: {exc}", elapsed)
        stats = runner.stats or {}
        output = runner.stdout.read() if runner.stdout else ""
        return PlaybookResult(
            rc=runner.rc if runner.rc is not None else -1,
            status=str(runner.status),
            failed=tuple(sorted(stats.get("failures", {}))),
            unreachable=tuple(sorted(stats.get("dark", {}))),
            output=trim(output),
            duration_s=time.monotonic() - started,
        )
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _environment(private: Path, known_hosts: Path | None) -> dict[str, str]:
    ssh_args = ["-F", "/dev/null", "-o", "ControlMaster=auto", "-o", "ControlPersist=30s", "-o", "BatchMode=yes"]
    if known_hosts is not None:
        ssh_args += ["-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes"]
    else:
        ssh_args += ["-o", "UserKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=no"]
    return {
        "ANSIBLE_HOME": str(private / "home"),
        "ANSIBLE_LOCAL_TEMP": str(private / "tmp"),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(private / "cp"),
        "ANSIBLE_HOST_KEY_CHECKING": "True" if known_hosts is not None else "False",
        "ANSIBLE_SSH_ARGS": " ".join(shlex.quote(a) for a in ssh_args),
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_PYTHON_INTERPRETER": "auto_silent",
        "ANSIBLE_INVENTORY_ENABLED": "yaml",
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
