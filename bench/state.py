"""Benchmark 5: the state on SQLite and on PostgreSQL, in the same run on the same machine.

    ROLLOUT_TEST_NET=60 .venv/bin/python bench/state.py [--runs 5] [--plants 40] [--waves 4]
        [--procs 4] [--threads 4] [--events 250] [--bursts 3]

1. A staged rollout of ``--plants`` plants (local transport, two layers, one host each) in
   ``--waves`` waves, the whole ``rollout deploy`` command, once with the state in SQLite
   (the project's ``.rollout/state.db``) and once in PostgreSQL (``ROLLOUT_STATE``), rounds
   alternating between the two; round 0 of each is a warm-up (a first install), medians of
   the others. Target (issue 11): PostgreSQL's wall time within 1.2x of SQLite's.
2. A journal append burst: ``--procs`` processes of ``--threads`` threads each append
   ``--events`` events at once through the state interface, one transaction an event, as
   a rollout's plants do; wall time from a common start to the last commit.

The PostgreSQL server is started here (``tests/pgserver.py``: initdb and pg_ctl as the
``postgres`` user, a free loopback port) with its default durability (fsync on,
synchronous_commit on), as a team's server runs, and stopped at the end.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fleetproject import REPO  # noqa: E402  (also puts tests/ on the path)
from localproject import make_local_project  # noqa: E402
from timing import Series, run_rollout, table  # noqa: E402

from pgserver import PgServer, running_server  # noqa: E402
from rollout.core.events import Event  # noqa: E402
from rollout.state.journal import RolloutRecord  # noqa: E402
from rollout.state.url import migrate_url, open_url, parse_state_url  # noqa: E402

TARGET = 1.2
"""PostgreSQL's rollout wall time within this many times SQLite's (issue 11)."""
WAIT = 300.0
"""Seconds any one burst, barrier or worker may take before the benchmark gives up."""


def rollout_rounds(pg: PgServer, base: Path, plants: int, waves: int, runs: int) -> tuple[Series, Series, int]:
    """The staged rollout on both backends, rounds alternating; (sqlite, postgresql, events a run)."""
    projects = {name: make_local_project(base / name, plants, waves, runs + 1) for name in ("sqlite", "postgresql")}
    database = pg.create_database()
    urls = {"sqlite": "sqlite:///.rollout/state.db", "postgresql": pg.url(database)}
    migrate_url(parse_state_url(urls["postgresql"], base))
    series = {name: Series(name) for name in projects}
    events = 0
    for r in range(runs + 1):
        order = ("sqlite", "postgresql") if r % 2 == 0 else ("postgresql", "sqlite")
        for name in order:
            elapsed, code, out = run_rollout(
                "deploy", "-C", str(projects[name]), "--release", f"r{r}", "--yes", env={"ROLLOUT_STATE": urls[name]}
            )
            done = sum(1 for e in out if e.get("kind") == "plant.done")
            if code != 0 or done != plants:
                raise RuntimeError(f"{name} r{r}: exit {code}, {done} of {plants} plants done")
            events = sum(1 for e in out if e.get("type") == "event")
            print(f"    {name:<10} round {r}: {elapsed:.3f} s, {events} events", file=sys.stderr, flush=True)
            if r > 0:
                series[name].times.append(elapsed)
    return series["sqlite"], series["postgresql"], events


def burst_worker(url: str, base: str, proc: int, threads: int, events: int, start: Barrier) -> None:
    """One process of a burst: its own rollout record, then ``threads`` threads appending at once."""
    journal = open_url(parse_state_url(url, Path(base)))
    rid = f"burst-{os.getpid()}-{proc}"
    journal.create(RolloutRecord(rid, "deploy", "r0", None, time.time(), "bench", {}))
    journal.append(rid, Event("rollout.started", "_rollout"))  # a warm connection, as a running rollout has

    def appends(thread: int) -> None:
        for i in range(events):
            journal.append(rid, Event("check.result", f"plant{thread:03d}", "edge", f"h{i}", detail={"n": i}))

    workers = [threading.Thread(target=appends, args=(t,)) for t in range(threads)]
    start.wait(WAIT)
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(WAIT)
    journal.close()


def one_burst(url: str, base: Path, procs: int, threads: int, events: int) -> float:
    """Wall seconds from the common start to the last process's last commit."""
    ctx = multiprocessing.get_context("spawn")  # no inherited connections or pool threads
    start = ctx.Barrier(procs + 1)
    workers = [ctx.Process(target=burst_worker, args=(url, str(base), p, threads, events, start)) for p in range(procs)]
    for worker in workers:
        worker.start()
    try:
        start.wait(WAIT)
        began = time.monotonic()
        for worker in workers:
            worker.join(WAIT)
        elapsed = time.monotonic() - began
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()
    failed = [w.exitcode for w in workers if w.exitcode != 0]
    if failed:
        raise RuntimeError(f"burst on {url}: worker exit codes {failed}")
    return elapsed


def burst_rounds(pg: PgServer, base: Path, procs: int, threads: int, events: int, bursts: int) -> tuple[Series, Series]:
    """The append burst on both backends (a fresh state each, then ``bursts`` rounds, alternating)."""
    (base / "burst").mkdir()
    database = pg.create_database()
    urls = {"sqlite": f"sqlite:///{base / 'burst' / 'state.db'}", "postgresql": pg.url(database)}
    for url in urls.values():
        migrate_url(parse_state_url(url, base))
    series = {name: Series(name) for name in urls}
    for r in range(bursts):
        for name in ("sqlite", "postgresql") if r % 2 == 0 else ("postgresql", "sqlite"):
            elapsed = one_burst(urls[name], base, procs, threads, events)
            print(f"    burst {name:<10} round {r}: {elapsed:.3f} s", file=sys.stderr, flush=True)
            series[name].times.append(elapsed)
    expected = bursts * procs * (threads * events + 1)
    for name, url in urls.items():
        journal = open_url(parse_state_url(url, base))
        seqs = [e.seq for e in journal.events(kinds=("check.result", "rollout.started"))]
        journal.close()
        if len(seqs) != expected or len(set(seqs)) != expected:
            raise RuntimeError(f"burst on {name}: {len(seqs)} events stored ({len(set(seqs))} seqs), {expected} sent")
    return series["sqlite"], series["postgresql"]


def verdict(ratio: float) -> str:
    return "met" if ratio <= TARGET else "NOT MET"


def stopping_on(signals: tuple[int, ...]) -> Callable[[int, Any], None]:
    """A handler that turns SIGTERM/SIGHUP into SystemExit, so the server is stopped on the way out."""

    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    for sig in signals:
        signal.signal(sig, handler)
    return handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--plants", type=int, default=40)
    parser.add_argument("--waves", type=int, default=4)
    parser.add_argument("--procs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--events", type=int, default=250)
    parser.add_argument("--bursts", type=int, default=3)
    args = parser.parse_args()
    stopping_on((signal.SIGTERM, signal.SIGHUP))
    with tempfile.TemporaryDirectory(prefix="rollout-bench-state-") as scratch, running_server(durable=True) as pg:
        base = Path(scratch)
        sqlite, postgres, events = rollout_rounds(pg, base, args.plants, args.waves, args.runs)
        rollout_ratio = postgres.median / sqlite.median
        print(
            f"Staged rollout, {args.plants} plants in {args.waves} waves (local transport, 2 layers, one host each,"
            f" {events} events a run), medians of {args.runs} after a warm-up (seconds)"
        )
        print(table("", [sqlite, postgres], sqlite).lstrip("\n"))
        print(f"  PostgreSQL / SQLite <= {TARGET}  {rollout_ratio:5.2f}  {verdict(rollout_ratio)}", flush=True)
        total = args.procs * args.threads * args.events
        b_sqlite, b_postgres = burst_rounds(pg, base, args.procs, args.threads, args.events, args.bursts)
        print(
            f"\nJournal append burst: {args.procs} processes x {args.threads} threads x {args.events} events"
            f" = {total} appends at once, one transaction each, medians of {args.bursts} (seconds)"
        )
        print(table("", [b_sqlite, b_postgres], b_sqlite).lstrip("\n"))
        for s in (b_sqlite, b_postgres):
            print(f"  {s.name + ' events/s':<34} {total / s.median:8.0f}")
        print(f"  PostgreSQL / SQLite  {b_postgres.median / b_sqlite.median:5.2f}  (no target)", flush=True)
    print(f"PostgreSQL on port {pg.port} stopped, {REPO.name}'s scratch folders removed", file=sys.stderr)


if __name__ == "__main__":
    main()
