"""What the PostgreSQL fault tests share: a migrated database per test, ``rollout`` processes
whose JSON events are read with a deadline, the hosts' own histories, and the agreement
between each host's record and the journal.

Every wait here is bounded; every process started through ``Procs`` is stopped at the end
of its test (continued first if it was held with SIGSTOP, then killed).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploykit import DeployProject
from pgserver import PgServer
from rollout.service import open_state
from rollout.state.journal import Journal, JournalError

ROLLOUT = str(Path(sys.executable).parent / "rollout")
LIMIT = 180.0
"""Seconds any one rollout command may take here."""
APP = "rollout-under-test"
"""The ``application_name`` of the connections of the processes a test runs: the ones it breaks."""

Event = dict[str, Any]


@dataclass
class PgState:
    """A fresh database on ``server``, migrated by ``rollout state migrate``; dropped by ``close``."""

    server: PgServer
    name: str

    def url(self, label: str = "") -> str:
        """The URL a process under test uses: its connections are named ``APP`` (``APP-label``),
        so a test can find, break or wait for exactly that process's connections."""
        name = f"{APP}-{label}" if label else APP
        return f"{self.server.url(self.name)}?application_name={name}"

    @property
    def plain_url(self) -> str:
        """The URL the test itself reads the state with (its connections are never broken)."""
        return self.server.url(self.name)

    def backends(self, label: str = "", busy: bool = False) -> list[int]:
        """The server pids of the connections of the processes under test (of ``label``'s only);
        ``busy``: only those inside a transaction or a statement."""
        pattern = f"{APP}-{label}" if label else f"{APP}%"
        states = ("active", "idle in transaction", "idle in transaction (aborted)") if busy else None
        with self.server.connect() as db:
            rows = db.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name LIKE %s "
                "AND (%s::text[] IS NULL OR state = ANY(%s::text[]))",
                (self.name, pattern, states and list(states), states and list(states)),
            ).fetchall()
        return [int(row[0]) for row in rows]

    def terminate_backends(self, label: str = "") -> list[int]:
        """``pg_terminate_backend`` on every connection of the processes under test; their pids."""
        pids = self.backends(label)
        with self.server.connect() as db:
            for pid in pids:
                db.execute("SELECT pg_terminate_backend(%s)", (pid,))
        return pids

    def hold(self, proc: Proc, label: str) -> None:
        """SIGSTOP ``proc`` at a moment none of its connections is inside a transaction.

        A process stopped between a statement and its commit keeps its row and advisory locks,
        and every other writer would queue behind it: that is a frozen machine, not the case a
        test of leases means. Stopped, looked at, and let go for a moment again until clean."""
        deadline = time.monotonic() + 30
        while True:
            proc.hold()
            time.sleep(0.05)  # the server's view of a statement sent just before the stop
            busy = self.backends(label, busy=True)
            if not busy:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{proc.name}: always stopped inside a transaction (backends {busy})")
            proc.go_on()
            time.sleep(0.002)

    def close(self) -> None:
        self.server.drop_database(self.name)


def migrated_state(server: PgServer, project: Path) -> PgState:
    """A new database, its schema made by ``rollout state migrate`` as a team would."""
    state = PgState(server, server.create_database())
    done = subprocess.run(
        [ROLLOUT, "state", "migrate", "-C", str(project), "--json"],
        capture_output=True,
        text=True,
        timeout=LIMIT,
        env={**os.environ, "ROLLOUT_STATE": state.url("migrate")},
    )
    assert done.returncode == 0, f"rollout state migrate exited {done.returncode}: {done.stdout}{done.stderr}"
    return state


def restart(server: PgServer) -> None:
    """``pg_ctl restart -m fast`` as the postgres user: every backend is ended, the server comes back."""
    log = str(server.root / "log")  # the new postmaster's output goes there, never to our pipe
    done = server.pg_ctl("-m", "fast", "-w", "-t", "60", "-l", log, "restart")
    assert done.returncode == 0, f"pg_ctl restart failed: {done.stdout}{done.stderr}"


class Proc:
    """One ``rollout`` command in a process of its own; its JSON lines read by a thread, so
    every wait on them has a deadline."""

    def __init__(self, args: list[str], env: Mapping[str, str], name: str = "") -> None:
        self.args = args
        self.name = name or " ".join(args[:2])
        self.proc = subprocess.Popen(
            [ROLLOUT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(env)
        )
        self.events: list[Event] = []
        self.lines: list[str] = []
        """Output lines that were not JSON (there should be none)."""
        self._queue: queue.Queue[Event | None] = queue.Queue()
        self._err: list[str] = []
        self._readers = [
            threading.Thread(target=self._read_out, daemon=True),
            threading.Thread(target=self._read_err, daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        self._ended = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self._queue.put(json.loads(line))
            except json.JSONDecodeError:
                self.lines.append(line)
        self._queue.put(None)

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        self._err.extend(self.proc.stderr)

    def poll(self, stop: Callable[[Event], bool], timeout: float) -> bool | None:
        """Take events until ``stop`` says so (True), the output ends (False) or ``timeout``
        seconds pass (None)."""
        deadline = time.monotonic() + timeout
        while not self._ended:
            try:
                event = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return None
            if event is None:
                self._ended = True
                break
            self.events.append(event)
            if stop(event):
                return True
        return False

    def until(self, stop: Callable[[Event], bool], timeout: float = LIMIT) -> bool:
        """Take events until ``stop`` says so (True) or the output ends (False); an AssertionError
        saying what was seen if neither happens within ``timeout`` seconds."""
        found = self.poll(stop, timeout)
        if found is None:
            raise AssertionError(f"{self.name}: nothing awaited within {timeout:g} s; saw {self.seen()}")
        return found

    def finish(self, timeout: float = LIMIT) -> int:
        """Read to the end and wait for the exit; its code (an AssertionError if it takes longer)."""
        self.until(lambda _: False, timeout)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name}: did not exit within {timeout:g} s; saw {self.seen()}") from None
        for reader in self._readers:
            reader.join(timeout=10)
        return code

    @property
    def stderr(self) -> str:
        return "".join(self._err)

    @property
    def err(self) -> str:
        """stderr, the error lines of the JSON output and the final rollout's message."""
        messages = [str(e.get("message")) for e in self.events if e.get("type") in ("error", "rollout")]
        return "".join(self._err) + "".join(self.lines) + "\n".join(m for m in messages if m)

    def result(self) -> Event | None:
        """The final ``{"type": "rollout", ...}`` line, if it came."""
        return next((e for e in reversed(self.events) if e.get("type") == "rollout"), None)

    def rollout_id(self) -> str | None:
        return next((str(e["rollout"]) for e in self.events if e.get("rollout")), None)

    def seen(self, last: int = 12) -> list[tuple[Any, ...]]:
        """The last events, short: (kind, plant, layer, seq), or the error lines."""
        return [
            (e.get("kind"), e.get("plant"), e.get("layer"), e.get("seq")) if "kind" in e and "seq" in e else (e,)
            for e in self.events[-last:]
        ]

    def hold(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def go_on(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Continued (if held) and killed, if still running."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(timeout=30)


@dataclass
class Procs:
    """The processes of one test, all stopped at its end."""

    env: dict[str, str]
    started: list[Proc] = field(default_factory=list)

    def start(self, *args: str | Path, env: Mapping[str, str] | None = None, name: str = "") -> Proc:
        proc = Proc([str(a) for a in args], {**self.env, **(env or {})}, name)
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.started:
            proc.stop()


def first_to(procs: list[Proc], stop: Callable[[Event], bool], timeout: float = LIMIT) -> Proc | None:
    """The first of ``procs`` to show an event ``stop`` takes (the others are not read further
    than that moment); None if all of them ended without one. Bounded by ``timeout``."""
    deadline = time.monotonic() + timeout
    live = list(procs)
    while live:
        if time.monotonic() > deadline:
            raise AssertionError(f"none of {len(live)} processes showed it within {timeout:g} s")
        for proc in list(live):
            found = proc.poll(stop, 0.01)
            if found:
                return proc
            if found is False:
                live.remove(proc)
    return None


@contextmanager
def watchdog(seconds: float, what: str) -> Iterator[None]:
    """Bounds a block that starts ``rollout`` processes it does not wait on with a deadline of
    its own (``test_faults.Run`` reads until the output ends): past ``seconds`` every ``rollout``
    child of this process is killed, which ends the block's reads, and the block fails saying so."""
    fired: list[list[int]] = []

    def kill_children() -> None:
        killed = []
        for pid in _rollout_children():
            for sig in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    break
            killed.append(pid)
        fired.append(killed)

    timer = threading.Timer(seconds, kill_children)
    timer.daemon = True
    timer.start()
    try:
        yield
    except BaseException:
        if fired:
            raise AssertionError(f"{what}: took over {seconds:g} s; killed rollout processes {fired[0]}") from None
        raise
    finally:
        timer.cancel()
    if fired:
        raise AssertionError(f"{what}: took over {seconds:g} s; killed rollout processes {fired[0]}")


def _rollout_children() -> list[int]:
    """Pids of the ``rollout`` processes this process started and that still run."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError):
            continue
        if int(fields[1]) == os.getpid() and any(part.decode(errors="replace") == ROLLOUT for part in cmdline):
            found.append(int(stat.parent.name))
    return found


def operator_env(home: Path, operator: str) -> dict[str, str]:
    """Another person: their own ``HOME`` (crash logs, ~/.pgpass) and name."""
    home.mkdir(parents=True, exist_ok=True)
    return {"HOME": str(home), "ROLLOUT_OPERATOR": operator, "XDG_STATE_HOME": str(home / ".local" / "state")}


def event(kind: str, plant: str, layer: str | None = None) -> Callable[[Event], bool]:
    """Stops at the first such event (any layer when ``layer`` is None)."""
    return lambda e: e.get("kind") == kind and e.get("plant") == plant and layer in (None, e.get("layer"))


# -- the hosts' own word ------------------------------------------------------------------


def host_histories(dp: DeployProject) -> dict[str, list[Event]]:
    """Host folder (``<host>/<layer>``) -> every activation its own history file records, in order."""
    found: dict[str, list[Event]] = {}
    for history in sorted(dp.root.parent.glob("roots/*/srv/dp/*/.rollout/history.jsonl")):
        host, layer = history.parts[-6], history.parts[-3]
        found[f"{host}/{layer}"] = [json.loads(line) for line in history.read_text().splitlines() if line.strip()]
    return found


def new_entries(before: dict[str, list[Event]], after: dict[str, list[Event]]) -> dict[str, list[Event]]:
    """What each host's history gained between two readings."""
    return {key: entries[len(before.get(key, [])) :] for key, entries in after.items()}


def plant_of(key: str) -> str:
    """``p3-in/ingest`` -> ``p3``."""
    return key.split("/", 1)[0].rsplit("-", 1)[0]


def by_plant(entries: dict[str, list[Event]]) -> dict[str, list[tuple[str, str, Any, Any]]]:
    """Plant -> (host folder, action, release, by) of each entry, for messages and comparisons."""
    found: dict[str, list[tuple[str, str, Any, Any]]] = {}
    for key, items in sorted(entries.items()):
        for entry in items:
            found.setdefault(plant_of(key), []).append(
                (key, str(entry.get("action")), entry.get("release"), entry.get("by"))
            )
    return found


def journal_of(dp: DeployProject) -> Journal:
    """The project's state as this test process reads it (``ROLLOUT_STATE``). A server restart
    leaves this process's pooled connections dead: the first use fails and drains them."""
    journal = open_state(dp.project())
    try:
        journal.locks()
    except JournalError:
        journal.locks()
    return journal


def journal_switches(dp: DeployProject) -> dict[tuple[str, str], list[tuple[str, Any, str]]]:
    """(plant, layer) -> the journal's activations of it, in order: (kind, release, rollout)."""
    found: dict[tuple[str, str], list[tuple[str, Any, str]]] = {}
    for each in journal_of(dp).events(kinds=("layer.activating", "layer.activated")):
        ev = each.event
        found.setdefault((ev.plant, str(ev.layer)), []).append((ev.kind, ev.release, each.rollout))
    return found


def assert_hosts_agree_with_journal(dp: DeployProject, plants: list[str], context: str) -> None:
    """No host runs a release that the journal did not record switching it to.

    Per plant and layer, the journal's last activation step decides: after ``layer.activated``
    every host runs that release; after a ``layer.activating`` with no ``activated`` yet (the
    run stopped between the two) a host runs that release or the one activated before it."""
    switches = journal_switches(dp)
    for plant in plants:
        for (layer, host), row in sorted(dp.states(plant).items()):
            where = f"{context}: {plant} {host} {layer}"
            assert row.running is not None, f"{where}: unreachable: {row.error}"
            assert row.running.whole, f"{where}: link, manifest and record disagree: {row.running}"
            steps = switches.get((plant, layer), [])
            activated = [release for kind, release, _ in steps if kind == "layer.activated"]
            allowed = {activated[-1]} if activated else {None}
            if steps and steps[-1][0] == "layer.activating":
                allowed.add(steps[-1][1])
            assert row.running.release in allowed, (
                f"{where}: the host runs {row.running.release}, but the journal's last steps of it are "
                f"{steps[-3:]} (allowed: {sorted(map(str, allowed))}): a switch without a recorded step"
            )


def last_switch(dp: DeployProject, plant: str) -> dict[str, Any]:
    """Layer -> the release of the journal's last activation step of that plant (``activating``
    or ``activated``: a resumed run that finds a host already switched records neither again)."""
    return {layer: steps[-1][1] for (p, layer), steps in journal_switches(dp).items() if p == plant}
