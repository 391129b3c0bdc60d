"""A generated project of N agent plants for the agent-fleet benchmark (``bench/agents.py``).

Two layers (``edge``, ``app``) on one host each per plant, every plant ``execution: agent``:
the centre renders and publishes, and never reaches a host. Each layer's bundle holds a few
files shared by every plant (stored once as blobs) and one templated per plant (the plant's
own blob), as a real code base does. Waves are equal slices in plant order.
"""

from __future__ import annotations

from pathlib import Path

from fleetproject import git, waves_yaml

ROLLOUT_YAML = """name: agentbench
codebase: {{repo: ., path: app, ref: r0}}
layers:
  - name: edge
    target: /srv/bench/edge
    keep_releases: 3
    checks:
      - {{name: status, type: command, command: "grep -qx ok current/status.txt", retries: 2, timeout: 10s}}
  - name: app
    target: /srv/bench/app
    keep_releases: 3
    checks:
      - {{name: status, type: command, command: "grep -qx ok current/status.txt", retries: 2, timeout: 10s}}
strategy:
  parallelism: {parallelism}
  max_failures: 50%
  on_failure: continue
  waves:
{waves}"""

PLANT = "archetype: std\ntimezone: UTC\nwindows: always\nexecution: agent\nagent_timeout: 600s\n"

INVENTORY = """all:
  vars:
    ansible_connection: local
  children:
    edge:
      hosts:
        {name}-gw:
          rollout_root: /srv/plants/{name}/gw
    app:
      hosts:
        {name}-app:
          rollout_root: /srv/plants/{name}/app
"""

TEMPLATE = """# {layer} of {{{{ plant.name }}}}, release {{{{ release.id }}}}
plant: {{{{ plant.name }}}}
timezone: {{{{ plant.timezone }}}}
hosts:
{{% for host in hosts %}}  - {{{{ host.name }}}}
{{% endfor %}}
"""


def shared_files(layer: str, release: int) -> dict[str, str]:
    """What every plant's bundle of ``layer`` holds alike: a status file and a few configs."""
    files = {"status.txt": "ok\n"}
    for i in range(4):
        lines = "".join(f"{layer}.setting.{i}.{j} = {release * 1000 + j}\n" for j in range(60))
        files[f"conf/{layer}-{i}.conf"] = lines
    return files


def plant_names(count: int) -> list[str]:
    return [f"plant{i:05d}" for i in range(count)]


def make_agent_project(root: Path, plants: int, waves: int, parallelism: int) -> Path:
    """``plants`` agent plants in ``waves`` waves of at most ``parallelism`` at once; release r0."""
    root.mkdir(parents=True)
    names = plant_names(plants)
    text = ROLLOUT_YAML.format(parallelism=min(parallelism, 1000), waves=waves_yaml(names, waves))
    (root / "rollout.yaml").write_text(text)
    for folder in ("plants", "inventories"):
        (root / folder).mkdir()
    for name in names:
        (root / "plants" / f"{name}.yaml").write_text(PLANT)
        (root / "inventories" / f"{name}.yml").write_text(INVENTORY.format(name=name))
    app = root / "app"
    for layer in ("edge", "app"):
        for rel, data in shared_files(layer, 0).items():
            path = app / layer / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(data)
        (app / layer / f"{layer}.yaml.j2").write_text(TEMPLATE.format(layer=layer))
    (app / "values.yaml").write_text("{}\n")
    (root / ".gitignore").write_text(".rollout/\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "release r0")
    git(root, "tag", "r0")
    return root
