"""Addresses the tests use: one /16 of 127/8 per test process, and one /16 of 10/8 for its plants.

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


# Plants in network namespaces (tests/netnskit.py) take 10.<100+NET>.0.0/16 of the private
# range, so two test processes never share a link or a host address: the third octet is the
# plant's index (0..127) for its link to the centre, 128 + index for its hosts.
PLANT_INDEXES = range(128)


def _plant_octet() -> int:
    if not 0 <= 100 + NET <= 255:
        raise ValueError(f"ROLLOUT_TEST_NET plus the worker ({NET}) leaves no room for plant networks (at most 155)")
    return 100 + NET


def _plant_index(index: int) -> int:
    if index not in PLANT_INDEXES:
        raise ValueError(f"plant index {index} out of {PLANT_INDEXES}")
    return index


def plant_centre_address(index: int) -> str:
    """The centre's end of plant ``index``'s link (a /30 with ``plant_link_address``)."""
    return f"10.{_plant_octet()}.{_plant_index(index)}.1"


def plant_link_address(index: int) -> str:
    """The plant's end of its link to the centre."""
    return f"10.{_plant_octet()}.{_plant_index(index)}.2"


def plant_hosts_prefix(index: int) -> str:
    """The /24 of plant ``index``'s hosts, which the centre has no route to."""
    return f"10.{_plant_octet()}.{128 + _plant_index(index)}.0/24"


def plant_host_address(index: int, host: int) -> str:
    """The address of host ``host`` (1..254) inside plant ``index``."""
    if not 1 <= host <= 254:
        raise ValueError(f"plant host {host} out of 1..254")
    return f"10.{_plant_octet()}.{128 + _plant_index(index)}.{host}"
