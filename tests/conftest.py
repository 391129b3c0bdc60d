"""Shared fixtures: real git repositories in temporary folders, the example project, the CLI."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import textwrap
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from netplan import example_net, local_address
from pgserver import PgServer, running_server
from rollout import cli

REPO = Path(__file__).resolve().parent.parent
# A suite started in the background (a CI runner's or a script's `&`) inherits SIGINT ignored, and
# so would every command a test starts, as an exec keeps an ignored signal: a test of Ctrl-C then
# fails (test_watch.py's did on a fresh clone). A person's Ctrl-C reaches a command started from a
# terminal, where SIGINT is not ignored: the suite starts its commands so, however it was started.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN and threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGINT, signal.default_int_handler)
# The CLI sizes its tables off a terminal by COLUMNS (default 160); a worker of the test
# session may inherit a narrow one from wherever the session was started.
os.environ.pop("COLUMNS", None)
# The plant cache of this worker's session, never the user's: every load in the suite goes through it.
_CACHE = tempfile.mkdtemp(prefix="rollout-test-cache-")
os.environ["ROLLOUT_CACHE_DIR"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, True)
# The test files that take longest (seconds on one worker, ./scripts/test of 2026-12-04), run
# first: with --dist loadfile a file stays on one worker, so the longest must not start last
# and leave the other workers idle while it finishes (scripts/test turns xdist's own
# reordering, by number of tests, off).
LONGEST_FIRST = (
    "test_deploy.py",  # 348 s
    "test_faults.py",  # 189 s, one test of 150 s
    "test_agent.py",  # 157 s
    "test_example_deploy.py",  # 128 s
    "test_rollout.py",  # 118 s
    "test_pg_faults.py",  # 108 s
    "test_fuzz.py",  # 95 s
    "test_state_postgres.py",  # 86 s
    "test_shared_host.py",  # 69 s
    "test_inventory.py",  # 68 s
    "test_agent_netns.py",  # 63 s
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest files first, the others after in their own order; a file's tests keep theirs."""
    rank = {name: n for n, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


EXAMPLE_ENTRIES = ["rollout.yaml", "plants", "inventories", "overlays", "playbooks", "solution", "example"]
GIT_ENV = {
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True, timeout=60)
    return done.stdout.strip()


def commit_all(root: Path, message: str, tag: str | None = None) -> str:
    if not (root / ".git").exists():
        git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "--allow-empty", "-m", message)
    if tag:
        git(root, "tag", "-f", tag)
    return git(root, "rev-parse", "HEAD")


MINI_FILES: dict[str, str] = {
    "rollout.yaml": """
        name: mini
        codebase:
          repo: .
          path: app
          ref: v1
        layers:
          - name: edge
            target: /opt/mini/edge
            checks:
              - name: config
                type: command
                command: "test -f current/config.yaml"
          - name: ingest
            target: /opt/mini/ingest
            restart:
              command: "current/run.sh restart"
            checks:
              - name: health
                type: http
                url: "http://{{ host.address }}:{{ values.port }}/health"
              - name: port
                type: tcp
                port: "{{ values.port }}"
        overlays:
          may_replace: ["edge/*.j2"]
          may_add: ["edge/extra/*"]
        strategy:
          parallelism: 2
          waves:
            - name: canary
              select: {plants: [p1]}
            - name: rest
              select: {remaining: true}
              max_failures: "50%"
        """,
    "plants/p1.yaml": """
        archetype: small
        timezone: Europe/Berlin
        windows:
          - {days: [sat, sun], start: "02:00", end: "06:00"}
        tags: [eu]
        """,
    "plants/p2.yaml": """
        archetype: small
        timezone: America/Chicago
        windows: always
        tags: [na]
        """,
    "plants/p3.yaml": """
        archetype: large
        timezone: Asia/Tokyo
        windows: always
        """,
    "app/values.yaml": """
        port: 8000
        lines: 2
        sensors: {}
        kpi:
          oee: 0.85
        """,
    "app/edge/config.yaml.j2": """
        port: {{ values.port }}
        lines: {{ values.lines }}
        """,
    "app/edge/static.txt": "unchanged bytes\n",
    "app/ingest/app.conf.j2": """
        plant={{ plant.name }}
        port={{ values.port }}
        oee={{ values.kpi.oee }}
        """,
    "app/ingest/run.sh": "#!/bin/sh\nexit 0\n",
    "overlays/p1/values.yaml": "port: 9000\n",
    "overlays/_archetypes/large/values.yaml": "lines: 4\n",
}


def _inventory(name: str, base: int) -> str:
    return textwrap.dedent(f"""
        all:
          vars:
            ansible_connection: local
          children:
            edge:
              hosts:
                {name}-gw:
                  ansible_host: {local_address(base + 1)}
            ingest:
              hosts:
                {name}-in:
                  ansible_host: {local_address(base + 2)}
        """)


for _i, _name in enumerate(["p1", "p2", "p3"]):
    MINI_FILES[f"inventories/{_name}.yml"] = _inventory(_name, _i * 10)


@dataclass
class MiniProject:
    """A small valid project in a real git repository; tests change it and commit."""

    root: Path

    def write(self, rel: str, text: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    def remove(self, rel: str) -> None:
        path = self.root / rel
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()

    def commit(self, tag: str = "v1") -> str:
        return commit_all(self.root, f"release {tag}", tag)


def make_mini(root: Path) -> MiniProject:
    project = MiniProject(root)
    for rel, text in MINI_FILES.items():
        project.write(rel, text)
    (root / "app/ingest/run.sh").chmod(0o755)
    project.commit("v1")
    return project


@pytest.fixture
def mini(tmp_path: Path) -> MiniProject:
    return make_mini(tmp_path / "mini")


def copy_example(dest: Path) -> Path:
    """The repository's example project in a new git repository, with its releases made."""
    dest.mkdir(parents=True)
    for entry in EXAMPLE_ENTRIES:
        src = REPO / entry
        if src.is_dir():
            shutil.copytree(src, dest / entry)
        else:
            shutil.copy2(src, dest / entry)
    for inventory in (dest / "inventories").glob("*.yml"):  # this test process's own addresses
        inventory.write_text(inventory.read_text().replace("127.0.2.", example_net()))
    commit_all(dest, "example")
    subprocess.run([str(dest / "example/make-releases")], check=True, capture_output=True, timeout=60)
    return dest


@pytest.fixture(scope="session")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only copy of the example; tests that change it use ``copy_example``."""
    return copy_example(tmp_path_factory.mktemp("example") / "project")


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


@pytest.fixture
def rollout(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run the CLI in-process, exactly as the console script does, and capture it."""

    def run(*args: str | Path) -> Result:
        capsys.readouterr()
        code = cli.run([str(a) for a in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One real PostgreSQL server for the whole session, started on first use, stopped at the end."""
    with running_server() as server:
        yield server
