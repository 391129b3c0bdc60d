"""A benchmark project on the local transport: every plant's host is a folder on this machine.

Two layers (``edge``, ``app``) on one host per plant, each with one ``command`` check; no
service binds an address, so the run measures orchestration and the journal, not transfer.
Releases are tags r0..r<n-1> of small seeded bundles (``fleetproject.bundle_files``).
"""

from __future__ import annotations

from pathlib import Path

from fleetproject import bundle_files, git, waves_yaml, write_release

from netplan import local_address

ROLLOUT_YAML = """name: statebench
codebase: {{repo: ., path: app, ref: r0}}
preflight: {{min_free_mb: 1}}
layers:
  - name: edge
    target: /srv/bench/edge
    keep_releases: 3
    checks:
      - {{name: status, type: command, command: "grep -qx ok current/status.txt", retries: 0, timeout: 10s}}
  - name: app
    target: /srv/bench/app
    keep_releases: 3
    checks:
      - {{name: status, type: command, command: "grep -qx ok current/status.txt", retries: 0, timeout: 10s}}
strategy:
  parallelism: {parallelism}
  max_failures: 0
  on_failure: halt
  waves:
{waves}"""

INVENTORY = """all:
  vars:
    ansible_connection: local
  children:
    edge:
      hosts:
        {host}:
          ansible_host: {address}
          rollout_root: {root}
    app:
      hosts:
        {host}:
"""


def make_local_project(root: Path, plants: int, waves: int, releases: int, files: int = 10, size: int = 20_000) -> Path:
    """``plants`` plants in ``waves`` equal waves (each wave's plants at once), releases r0..;
    the hosts' folders are under ``<root>/hosts``."""
    root.mkdir(parents=True)
    names = [f"plant{i:03d}" for i in range(plants)]
    parallelism = -(-plants // waves)
    (root / "rollout.yaml").write_text(ROLLOUT_YAML.format(parallelism=parallelism, waves=waves_yaml(names, waves)))
    (root / "plants").mkdir()
    (root / "inventories").mkdir()
    for i, name in enumerate(names):
        (root / "plants" / f"{name}.yaml").write_text("archetype: std\ntimezone: UTC\nwindows: always\n")
        host = f"{name}-h0"
        inventory = INVENTORY.format(host=host, address=local_address(i + 1), root=root / "hosts" / name / host)
        (root / "inventories" / f"{name}.yml").write_text(inventory)
    app = root / "app"
    for layer in ("edge", "app"):
        (app / layer).mkdir(parents=True)
    (app / "values.yaml").write_text("{}\n")
    (root / ".gitignore").write_text(".rollout/\nhosts/\n")
    git(root, "init", "-q", "-b", "main")
    for r in range(releases):
        for n, layer in enumerate(("edge", "app")):
            write_release(app / layer, bundle_files(2000 + 2 * r + n, files, size))
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", f"release r{r}")
        git(root, "tag", f"r{r}")
    return root
