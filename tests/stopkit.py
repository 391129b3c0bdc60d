"""Holding a ``rollout`` process still with SIGSTOP at a moment it writes nothing to an SQLite state.

A process stopped inside a write transaction keeps the state's write lock, and every other
writer then waits for it and fails: that is a frozen machine, not the race a test of two
processes means. So the process is stopped, seen stopped, and the state probed for its write
lock; if it holds the lock, it is let go for a moment and stopped again (bounded).
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

LIMIT_S = 30.0


def _stopped(pid: int) -> bool:
    """Whether the kernel has the process stopped (state T in /proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] in ("T", "t")


def _writable(db: Path) -> bool:
    with closing(sqlite3.connect(db, timeout=0.05, isolation_level=None)) as probe:
        try:
            probe.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return False
        probe.execute("ROLLBACK")
        return True


@contextmanager
def held_between_writes(proc: subprocess.Popen[str], db: Path) -> Iterator[None]:
    """``proc`` stopped while the body runs, at a moment it holds no write lock on ``db``."""
    deadline = time.monotonic() + LIMIT_S
    while True:
        proc.send_signal(signal.SIGSTOP)
        while not _stopped(proc.pid):
            if time.monotonic() > deadline:
                raise AssertionError(f"pid {proc.pid} did not stop")
            time.sleep(0.001)
        if _writable(db):
            break
        proc.send_signal(signal.SIGCONT)
        if time.monotonic() > deadline:
            raise AssertionError(f"pid {proc.pid}: always stopped inside a write to {db}")
        time.sleep(0.002)  # let it finish the transaction it was stopped in
    try:
        yield
    finally:
        proc.send_signal(signal.SIGCONT)
