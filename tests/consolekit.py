"""A project for the console's tests: plants berlin (canary) and detroit (a wave that waits
for approval), each one edge and one ingest host in local folders, v1 installed on both and
v2 paused before detroit's wave; one user of each role, their tokens kept for the tests."""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from deploykit import DeployProject, PlantSpec, build
from rollout import cli

STRATEGY = """  parallelism: 1
  max_failures: 0
  on_failure: halt
  waves:
    - name: canary
      select: {plants: [berlin]}
    - name: rest
      select: {remaining: true}
      approval: true
"""
PLANTS = [PlantSpec("berlin"), PlantSpec("detroit")]
USERS = {
    "ada": ("admin", ()),
    "rita": ("release-engineer", ()),
    "vic": ("viewer", ()),
    "bert": ("plant-it", ("berlin",)),
    "dora": ("plant-it", ("detroit",)),
    "agnes": ("agent", ("berlin",)),
}


@dataclass
class ConsoleProject:
    dp: DeployProject
    paused: str
    """The v2 rollout, paused before detroit's wave."""
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return self.dp.root


def run_cli(*args: str | Path) -> tuple[int, list[dict[str, object]]]:
    """The CLI in-process with --json: its exit code and JSON lines."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.run([str(a) for a in args])
    return code, [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]


def console_project(tmp: Path) -> ConsoleProject:
    dp = build(tmp, "local", None, PLANTS, light=True, strategy=STRATEGY)
    try:
        return _prepared(dp)
    except BaseException:  # a set-up that failed half way leaves no service behind
        dp.stop_services()
        raise


def _prepared(dp: DeployProject) -> ConsoleProject:
    if os.environ.get("ROLLOUT_STATE", "").startswith("postgresql"):
        assert run_cli("state", "migrate", "-C", dp.root, "--json")[0] == 0, "rollout state migrate failed"
    code, _ = run_cli("deploy", "-C", dp.root, "--release", "v1", "--yes", "--json", "--approve-through", "rest")
    assert code == 0, "v1 was not installed on berlin and detroit"
    code, lines = run_cli("deploy", "-C", dp.root, "--release", "v2", "--yes", "--json")
    assert code == 4, f"v2 did not pause before detroit's wave: {lines[-3:]}"
    paused = str(lines[-1]["id"])
    made = ConsoleProject(dp, paused)
    for name, (role, plants) in USERS.items():
        args = ["user", "add", name, "--role", role, "-C", dp.root, "--json"]
        for plant in plants:
            args += ["--plant", plant]
        code, lines = run_cli(*args)
        assert code == 0, f"user add {name}: {lines}"
        made.tokens[name] = str(lines[0]["token"])
    return made


JOB_S = 120.0


def wait_job(get, key: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """The job once it ended (bounded)."""
    deadline = time.monotonic() + JOB_S
    while time.monotonic() < deadline:
        job = get(f"/api/v1/jobs/{key}").json()
        if job["state"] in ("done", "failed"):
            return dict(job)
        time.sleep(0.1)
    raise AssertionError(f"job {key} did not end within {JOB_S} s: {job}")
