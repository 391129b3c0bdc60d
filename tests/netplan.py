"""Loopback addresses the tests use, one /16 of 127/8 per test process.

The fleets' sshd servers and the plants' services bind fixed ports on their own addresses;
two test processes at once (a second suite, a parallel worker) each take another second
octet: ``ROLLOUT_TEST_NET`` (a number, default 0) plus the worker's number under xdist.
"""

from __future__ import annotations

import os


def _net() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    return int(os.environ.get("ROLLOUT_TEST_NET", "0")) + (int(worker) if worker.isdigit() else 0)


NET = _net()


def fleet_address(index: int) -> str:
    """The address of SSH test host ``index`` (each test module takes its own range)."""
    return f"127.{NET}.1.{index}"


def local_address(index: int) -> str:
    """The address of a host reached by the local transport (its services bind there)."""
    return f"127.{NET}.3.{index}"


def example_net() -> str:
    """The prefix standing for the example project's ``127.0.2.`` in this test process."""
    return f"127.{NET}.2."


def console_address(index: int) -> str:
    """The address a test's ``rollout serve`` instance listens on."""
    return f"127.{NET}.4.{index}"
