"""Benchmark 7 (issue 13): 10,000 agent plants through one ``rollout serve`` on PostgreSQL.

    ROLLOUT_TEST_NET=80 .venv/bin/python bench/agents.py [--plants 10000] [--waves 4]
        [--parallelism 1000] [--fail-rate 0.02] [--beat 30] [--no-sample]

A generated project of ``--plants`` plants, every one ``execution: agent``, in ``--waves``
waves (no bakes, no approvals, ``--parallelism`` plants of a wave at once, max_failures 50 %
with on_failure continue, so the seeded failures never halt it). The state is a PostgreSQL
server started here (``tests/pgserver.py``, durable: fsync on) and stopped at the end. One
real ``rollout serve`` (uvicorn) serves the agents; the agents are an asyncio fleet in this
process (``agentfleet.py``): each takes its plant's order, fetches its blobs, sends the events
a real agent sends, fails at the seeded rate (and rolls back), and beats. The orchestrator is
a real ``rollout deploy`` process, run under ``sampler.py`` (every thread sampled every 10 ms)
unless ``--no-sample``.

Measured: the deploy's wall time and plants finished a second, p50/p99 of an events post
(client side), peak RSS of the service (VmHWM) and of the orchestrator (rusage), the
database's size, the CPU seconds of each process, and where the orchestrator's threads spend
their time. Targets: 10,000 plants in under 5 minutes (35 plants a second), the service and
the orchestrator each under 500 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

from agentfleet import FleetStats, Pace, run_fleet, seeded_failures  # noqa: E402
from agentproject import make_agent_project, plant_names, shared_files  # noqa: E402
from agentreport import Measured, report  # noqa: E402
from fleetproject import REPO  # noqa: E402  (also puts tests/ on the path)
from servekit import Server  # noqa: E402
from state import stopping_on  # noqa: E402

from netplan import console_address  # noqa: E402
from pgserver import PgServer, running_server  # noqa: E402
from rollout.service.users import hash_token, new_token  # noqa: E402
from rollout.state.access import User  # noqa: E402
from rollout.state.url import migrate_url, open_url, parse_state_url  # noqa: E402

PYTHON = str(REPO / ".venv" / "bin" / "python")
DEPLOY_TIMEOUT = 1800.0


def add_agents(url: str, base: Path, plants: list[str]) -> dict[str, str]:
    """An agent token for every plant, as ``rollout user add NAME --role agent --plant P`` makes it."""
    journal = open_url(parse_state_url(url, base))
    tokens = {}
    try:
        for plant in plants:
            token = new_token()
            journal.add_user(User(f"agent-{plant}", "agent", (plant,), hash_token(token), time.time(), "bench"))
            tokens[plant] = token
    finally:
        journal.close()
    return tokens


def shared_hashes() -> frozenset[str]:
    """The files every plant's bundles hold alike (copied, not templated: the same bytes)."""
    files = [data for layer in ("edge", "app") for data in shared_files(layer, 0).values()]
    return frozenset(hashlib.sha256(data.encode()).hexdigest() for data in files)


def database_size(pg: PgServer, name: str) -> int:
    with pg.connect() as db:
        row = db.execute("SELECT pg_database_size(%s)", (name,)).fetchone()
    return int(row[0]) if row else 0


def proc_status(pid: int, field: str) -> int:
    """A ``/proc/PID/status`` figure in bytes (VmHWM, VmRSS), 0 once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def postgres_cpu_s(pg: PgServer) -> float:
    """CPU seconds of the server's processes still running (the postmaster's children's added)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            owner = stat.stat().st_uid
            cmd = Path(stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if owner == pwd_uid("postgres") and (b"postgres" in cmd):
            total += cpu_s(int(stat.parent.name))
            fields = stat.read_text().rsplit(")", 1)[1].split()
            total += (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
    return total


def open_files(wanted: int) -> None:
    """Room for every agent's connections in this process and in ``rollout serve`` (its child):
    two each, a long poll and the work, on both ends. Raised as far as this user may."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(hard, wanted)))
    except (ValueError, OSError):  # not root: as far as the hard limit goes
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def pwd_uid(name: str) -> int:
    import pwd

    return pwd.getpwnam(name).pw_uid


class FleetThread:
    """The fleet's event loop on a thread of its own, so this process waits on the deploy meanwhile."""

    def __init__(self, url: str, tokens: dict[str, str], failing: set[str], pace: Pace) -> None:
        self.stats = FleetStats()
        self.loop = uvloop.new_event_loop()  # the fleet is load: the less CPU it takes, the truer the figures
        self.stop = asyncio.Event()
        self.thread = threading.Thread(target=self._run, args=(url, tokens, failing, pace), daemon=True)
        self.thread.start()

    def _run(self, url: str, tokens: dict[str, str], failing: set[str], pace: Pace) -> None:
        asyncio.set_event_loop(self.loop)
        self.task = self.loop.create_task(run_fleet(url, tokens, failing, pace, self.stats, self.stop))
        try:
            self.loop.run_until_complete(self.task)
        except asyncio.CancelledError:
            pass

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(timeout=60)


def run_deploy(root: Path, env: dict[str, str], sample: Path | None, out: Path) -> tuple[float, int, int, float]:
    """``rollout deploy`` (under the sampler): wall seconds, exit code, peak RSS bytes, CPU seconds."""
    argv = [str(REPO / ".venv" / "bin" / "rollout")]
    if sample is not None:
        argv = [PYTHON, str(REPO / "bench" / "sampler.py")]
        env = {**env, "ROLLOUT_SAMPLE_OUT": str(sample)}
    argv += ["deploy", "-C", str(root), "--release", "r0", "--yes", "--json"]
    began = time.monotonic()
    with open(out, "wb") as stdout:
        proc = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.STDOUT, env=env)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait(timeout=30)
            raise
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.monotonic() - began, proc.returncode, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime


def outcomes(out: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in out.read_text(errors="replace").splitlines():
        if line.startswith("{") and '"type": "rollout"' in line or line.startswith('{"type":"rollout"'):
            found = {str(k): str(v) for k, v in json.loads(line).get("plants", {}).items()}
    return found


def bench(args: argparse.Namespace, pg: PgServer, base: Path) -> Measured:
    names = plant_names(args.plants)
    root = make_agent_project(base / "project", args.plants, args.waves, args.parallelism)
    database = pg.create_database()
    url = pg.url(database)
    migrate_url(parse_state_url(url, base))
    print(f"    project of {args.plants} plants made; adding agent tokens", file=sys.stderr, flush=True)
    tokens = add_agents(url, base, names)
    failing = seeded_failures(names, args.fail_rate, args.seed)
    env = {**os.environ, "ROLLOUT_STATE": url, "NO_COLOR": "1"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    server = Server(root, console_address(200), env={"ROLLOUT_STATE": url})
    fleet = None
    try:
        pace = Pace(beat_s=args.beat, all_blobs=args.all_blobs, cached=shared_hashes())
        fleet = FleetThread(server.url, tokens, failing, pace)
        time.sleep(min(10.0, 1.0 + args.plants / 2000))  # every agent polling before the deploy starts
        serve_cpu0 = cpu_s(server.proc.pid)
        print(f"    {len(tokens)} agents polling {server.url}; rollout deploy", file=sys.stderr, flush=True)
        sample = None if args.no_sample else base / "sample.json"
        wall, code, rss, deploy_cpu = run_deploy(root, env, sample, base / "deploy.out")
        serve_hwm, serve_cpu = proc_status(server.proc.pid, "VmHWM"), cpu_s(server.proc.pid) - serve_cpu0
        pg_cpu = postgres_cpu_s(pg)
    finally:
        if fleet is not None:
            fleet.close()
        server.stop()
    found = outcomes(base / "deploy.out")
    if code not in (0, 1) or len(found) != args.plants:
        tail = (base / "deploy.out").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"rollout deploy exited {code} with {len(found)} of {args.plants} outcomes:\n{tail}")
    profile = json.loads(sample.read_text()) if sample is not None and sample.exists() else None
    cpu = {"rollout deploy": deploy_cpu, "rollout serve": serve_cpu,
           "agent fleet (this process)": time.process_time(), "postgresql": pg_cpu}  # fmt: skip
    return Measured(
        plants=args.plants, waves=args.waves, parallelism=args.parallelism, wall_s=wall, exit_code=code,
        outcomes=found, failing=len(failing), fleet=fleet.stats, serve_hwm=serve_hwm, deploy_rss=rss,
        db_bytes=database_size(pg, database), cpu=cpu, profile=profile,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plants", type=int, default=10_000)
    parser.add_argument("--waves", type=int, default=4)
    parser.add_argument("--parallelism", type=int, default=1000)
    parser.add_argument("--fail-rate", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument("--beat", type=float, default=30.0, help="seconds between an agent's heartbeats")
    parser.add_argument("--all-blobs", action="store_true", help="each agent fetches every file, shared ones too")
    parser.add_argument("--no-sample", action="store_true", help="run the orchestrator without the sampler")
    parser.add_argument("--keep", type=Path, help="keep the scratch folder (project, deploy output) here")
    args = parser.parse_args()
    stopping_on((15, 1))
    open_files(4 * args.plants + 1024)
    with tempfile.TemporaryDirectory(prefix="rollout-bench-agents-") as scratch, running_server(durable=True) as pg:
        base = Path(args.keep) if args.keep else Path(scratch)
        base.mkdir(parents=True, exist_ok=True)
        print(report(bench(args, pg, base)), flush=True)
    print(f"PostgreSQL on port {pg.port} stopped, scratch folders removed", file=sys.stderr)


if __name__ == "__main__":
    main()
