"""Shared pieces of the fleet benchmarks: medians, tables, running rollout, a fleet."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fleetproject import REPO, Fleet

ROLLOUT = str(REPO / ".venv" / "bin" / "rollout")
RUN_TIMEOUT = 900.0


@dataclass
class Series:
    """Timings of one mechanism, warm-up excluded."""

    name: str
    times: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    def row(self, reference: float | None) -> str:
        ratio = f"{self.median / reference:8.2f}x" if reference else "         "
        spread = f"{min(self.times):7.3f} {max(self.times):7.3f}"
        return f"  {self.name:<34} {self.median:8.3f} {spread} {ratio}"


def table(title: str, series: list[Series], reference: Series) -> str:
    """Median, min and max of each series, and its ratio to ``reference``."""
    lines = [title, f"  {'mechanism':<34} {'median s':>8} {'min':>7} {'max':>7} {'÷ ' + reference.name[:7]:>9}"]
    lines += [s.row(reference.median) for s in series]
    return "\n".join(lines)


def rollout_env() -> dict[str, str]:
    """A user's environment: byte-code caches written as usual, no colour, no terminal."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["NO_COLOR"] = "1"
    return env


def run_rollout(*args: str, env: dict[str, str] | None = None) -> tuple[float, int, list[dict[str, object]]]:
    """Run ``rollout ARGS --json`` (``env`` added to a user's environment): wall seconds of the
    whole command, exit code, events."""
    started = time.monotonic()
    done = subprocess.run(
        [ROLLOUT, *args, "--json"],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env={**rollout_env(), **(env or {})},
    )
    elapsed = time.monotonic() - started
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode not in (0, 1):
        raise RuntimeError(f"rollout {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return elapsed, done.returncode, events


@contextmanager
def fleet(count: int, first: int = 101) -> Iterator[tuple[Fleet, Path]]:
    """``count`` sshd hosts on 127.0.1.<first>..., and a scratch folder; both gone afterwards."""
    with tempfile.TemporaryDirectory(prefix="rollout-bench-") as scratch:
        base = Path(scratch)
        hosts = Fleet(base / "fleet", count, first=first).start()
        try:
            yield hosts, base
        finally:
            hosts.stop()
