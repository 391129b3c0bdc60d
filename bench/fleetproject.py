"""A benchmark project for the SSH fleet: one layer, one bundle of ~50 files and ~1 MB per host.

Every release's files are fresh seeded bytes (half random, half text), so no release can
reuse another's staged files and every mechanism ships the same bytes.
"""

from __future__ import annotations

import io
import os
import random
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from fleet import PORT, Fleet, SshHost  # noqa: E402

CHECK = "grep -qx ok current/status.txt"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def bundle_files(seed: int, files: int = 50, total: int = 1_000_000, status: str = "ok") -> dict[str, bytes]:
    """``files`` files of about ``total`` bytes in all; ``status.txt`` says whether the check passes."""
    rng = random.Random(seed)
    size = total // (files - 1)
    out = {"status.txt": f"{status}\n".encode()}
    for i in range(files - 1):
        noise = rng.randbytes(size // 2)
        text = "".join(f"sensor-{i:02d}-{j} {rng.random():.6f}\n" for j in range(size // 40)).encode()
        out[f"data/part-{i:02d}.bin"] = noise + text[: size - len(noise)]
    return out


def tarball(files: dict[str, bytes], path: Path) -> Path:
    """The same files as one gzip tarball, for the baselines."""
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for rel, data in sorted(files.items()):
            info = tarfile.TarInfo(rel)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return path


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", *args], cwd=root, env={**os.environ, **GIT_ENV}, check=True, capture_output=True, timeout=120
    )


@dataclass(frozen=True)
class Plants:
    count: int
    hosts_per_plant: int


ROLLOUT_YAML = """name: bench
codebase: {{repo: ., path: app, ref: r0}}
ssh: {{known_hosts: {known_hosts}, connect_timeout: 10s, command_timeout: 60s}}
preflight: {{min_free_mb: 1}}
layers:
  - name: app
    target: /srv/bench/app
    keep_releases: 3
    checks:
      - name: status
        type: command
        command: "{check}"
        retries: 0
        timeout: 10s
strategy:
  parallelism: {parallelism}
  max_failures: 0
  on_failure: halt
  waves:
{waves}"""


def waves_yaml(plants: list[str], waves: int) -> str:
    """``waves`` waves of equal size, in order."""
    size = -(-len(plants) // waves)
    out = []
    for w in range(waves):
        members = plants[w * size : (w + 1) * size]
        out.append(f"    - name: w{w + 1}\n      select: {{plants: [{', '.join(members)}]}}\n")
    return "".join(out)


def inventory(hosts: list[tuple[str, SshHost]], fleet: Fleet, folder: str) -> str:
    lines = [
        "all:",
        "  vars:",
        "    ansible_connection: ssh",
        f"    ansible_port: {PORT}",
        "    ansible_user: root",
        f"    ansible_ssh_private_key_file: {fleet.client_key}",
        "  children:",
        "    app:",
        "      hosts:",
    ]
    for name, host in hosts:
        lines += [
            f"        {name}:",
            f"          ansible_host: {host.address}",
            f"          rollout_root: {host.home / folder}",
        ]
    return "\n".join(lines) + "\n"


def make_project(
    root: Path,
    fleet: Fleet,
    plants: Plants,
    releases: int,
    waves: int = 1,
    parallelism: int | None = None,
    folder: str = "rollout",
    bad: frozenset[int] = frozenset(),
    files: int = 50,
    size: int = 1_000_000,
) -> Path:
    """A rollout project whose releases are tags r0..r<releases-1> (those in ``bad`` fail their check).

    Plant i's hosts are fleet hosts i*hosts_per_plant.. (wrapping round the fleet); each
    host keeps its rollout files under ``<home>/<folder>``.
    """
    root.mkdir(parents=True)
    names = [f"plant{i:03d}" for i in range(plants.count)]
    (root / "rollout.yaml").write_text(
        ROLLOUT_YAML.format(
            known_hosts=fleet.known_hosts,
            check=CHECK,
            parallelism=parallelism or plants.count,
            waves=waves_yaml(names, waves),
        )
    )
    (root / "plants").mkdir()
    (root / "inventories").mkdir()
    for i, name in enumerate(names):
        (root / "plants" / f"{name}.yaml").write_text("archetype: std\ntimezone: UTC\nwindows: always\n")
        hosts = [
            (f"{name}-h{j}", fleet.hosts[(i * plants.hosts_per_plant + j) % len(fleet.hosts)])
            for j in range(plants.hosts_per_plant)
        ]
        (root / "inventories" / f"{name}.yml").write_text(inventory(hosts, fleet, folder))
    app = root / "app"
    (app / "app").mkdir(parents=True)
    (app / "values.yaml").write_text("{}\n")
    git(root, "init", "-q", "-b", "main")
    for r in range(releases):
        write_release(app / "app", bundle_files(1000 + r, files, size, "broken" if r in bad else "ok"))
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", f"release r{r}")
        git(root, "tag", f"r{r}")
    return root


def write_release(folder: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
