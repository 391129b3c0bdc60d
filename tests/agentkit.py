"""Agent plants for tests: a deploy project whose chosen plants say ``execution: agent``, a real
``rollout serve`` on a loopback address, and real ``rollout agent`` processes, each with its own
token and work folder. Every process is stopped by its pid at the end."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from consolekit import run_cli
from servekit import ROLLOUT, Server

from deploykit import DeployProject


def make_agent_plants(dp: DeployProject, plants: list[str], timeout: str = "60s") -> None:
    for plant in plants:
        meta = dp.root / "plants" / f"{plant}.yaml"
        meta.write_text(meta.read_text() + f"execution: agent\nagent_timeout: {timeout}\n")


def agent_token(dp: DeployProject, plant: str, folder: Path) -> Path:
    code, lines = run_cli("user", "add", f"agent-{plant}", "--role", "agent", "--plant", plant, "-C", dp.root, "--json")
    assert code == 0, f"user add agent-{plant}: {lines}"
    path = folder / f"{plant}.token"
    path.write_text(str(lines[0]["token"]) + "\n")
    path.chmod(0o600)
    return path


def outbox_events(work: Path) -> list[tuple[str, str]]:
    """(order, kind) of every event in the outbox of the agent working in ``work`` (its SQLite
    file, read as a test would)."""
    path = work / "outbox.db"
    if not path.exists():
        return []
    with closing(sqlite3.connect(path, timeout=10)) as db:
        rows = db.execute("SELECT order_id, body FROM events ORDER BY rowid").fetchall()
    return [(str(o), str(json.loads(b)["kind"])) for o, b in rows]


@dataclass
class AgentProc:
    plant: str
    work: Path
    args: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> AgentProc:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def outbox_kinds(self) -> list[tuple[str, str]]:
        return outbox_events(self.work)

    def wait_for(self, kind: str, skip: int = 0, seconds: float = 60.0) -> None:
        """Until the outbox holds ``kind`` among its events after the first ``skip``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if any(k == kind for _, k in self.outbox_kinds()[skip:]):
                return
            time.sleep(0.01)
        raise AssertionError(f"agent of {self.plant} never announced {kind}: {self.log.read_text()[-2000:]}")


@dataclass
class Centre:
    dp: DeployProject
    server: Server
    agents: dict[str, AgentProc] = field(default_factory=dict)

    def agent(self, plant: str, token: Path, extra: tuple[str, ...] = ()) -> AgentProc:
        work = self.dp.root.parent / "agents" / plant
        args = [ROLLOUT, "agent", "--plant", plant, "--server", self.server.url, "--token-file", str(token)]
        args += ["--work-dir", str(work), "--poll", "2", *extra]
        found = AgentProc(plant, work, args, self.dp.root.parent / f"agent-{plant}.log")
        self.agents[plant] = found
        return found.start()

    def stop(self) -> None:
        for found in self.agents.values():
            found.stop()
        self.server.stop()
