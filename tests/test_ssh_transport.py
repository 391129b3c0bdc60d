"""The SSH transport against a real OpenSSH server: commands that end at once, many threads on one
connection, never lose the connection (an end-of-file sent after the channel's close once did)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from fleet import PORT, Fleet
from rollout.transports.base import TransportError
from rollout.transports.ssh import SshTransport

THREADS = 8
COMMANDS = 25


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    hosts = Fleet(tmp_path_factory.mktemp("fleet"), 1, first=111).start()
    yield hosts
    hosts.stop()


def _transport(fleet: Fleet) -> SshTransport:
    host = fleet.hosts[0]
    return SshTransport("h", host.address, PORT, "root", str(fleet.client_key), fleet.known_hosts, 10)


def test_commands_that_end_at_once_never_drop_the_shared_connection(fleet: Fleet) -> None:
    transport = _transport(fleet)
    failures: list[str] = []
    stop = threading.Event()

    def busy() -> None:  # the interpreter contended, as on a loaded machine: the race's window widens
        while not stop.is_set():
            sum(range(1000))

    def work() -> None:
        for _ in range(COMMANDS):
            try:
                transport.run("true", 10)
            except TransportError as exc:
                failures.append(str(exc))

    burners = [threading.Thread(target=busy) for _ in range(2)]
    workers = [threading.Thread(target=work) for _ in range(THREADS)]
    try:
        for thread in burners + workers:
            thread.start()
        for thread in workers:
            thread.join(timeout=120)
    finally:
        stop.set()
        for thread in burners:
            thread.join(timeout=10)
        transport.close()
    assert not any(t.is_alive() for t in workers), "a command hung"
    assert failures == [], f"{len(failures)} of {THREADS * COMMANDS} failed, first: {failures[0]}"
    log = (fleet.hosts[0].home / "sshd.log").read_text()
    assert "nonexistent channel" not in log


def test_input_still_reaches_a_command_and_an_empty_one_reads_as_nothing(fleet: Fleet) -> None:
    transport = _transport(fleet)
    try:
        fed = transport.run("cat; echo .", 10, stdin=b"a\nb\n")
        empty = transport.run("cat; echo .", 10)
        failed = transport.run("exit 7", 10)
    finally:
        transport.close()
    assert (fed.exit_code, fed.stdout) == (0, "a\nb\n.\n")
    assert (empty.exit_code, empty.stdout) == (0, ".\n")
    assert failed.exit_code == 7
