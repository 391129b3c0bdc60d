"""The code stays linted and strictly typed: the same checks a reviewer would run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import REPO

BIN = Path(sys.executable).parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing() -> None:
    done = run(str(BIN / "ruff"), "check", "rollout", "tests")
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_strict_finds_nothing() -> None:
    done = run(str(BIN / "mypy"), "rollout")
    assert done.returncode == 0, done.stdout + done.stderr
