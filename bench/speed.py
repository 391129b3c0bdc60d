"""Benchmark 7: start-up and the state's status, each against a baseline of the same run.

    .venv/bin/python bench/speed.py [--runs 5] [--plants 1000] [--keep DIR]

1. Start-up: ``rollout --help`` and ``rollout plan`` of a 10-plant project, each a fresh
   process, against ``python -c pass`` (the interpreter alone) measured in the same run; the
   heaviest imports of each command (``python -X importtime``) show where start-up goes.
   Target (issue 15): each under 0.25 s.
2. ``rollout status`` of ``--plants`` plants from the state: a generated project (bench/scale.py)
   whose SQLite state holds two deploys of every plant (the events a real deploy writes),
   no host folder existing, so any row with the seeded release came from the state and no
   host was asked; the first run, not counted, fills a plant cache of its own, so the runs timed
   load unchanged plants from it. Target (issue 15): under 1 s. Its hot path in-process (cProfile).
3. The hot paths of ``plan`` and ``validate`` of the same project (cProfile, serial), whose
   times at up to 10,000 plants bench/scale.py measures (targets: under 2 s and 10 s).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scale  # noqa: E402
from timing import Series, rollout_env, table  # noqa: E402

from rollout.core.events import Event  # noqa: E402
from rollout.state.journal import JournalEvent, RolloutRecord  # noqa: E402

PYTHON = sys.executable
STARTUP_TARGET = 0.25
STATUS_TARGET = 1.0
LAYERS = ("edge", "ingest", "dashboards")
RELEASES = ("2026.10.0", scale.RELEASE)


def timed(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> tuple[float, str]:
    """Wall seconds of one fresh process, and its output; a failure stops the benchmark."""
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env or rollout_env(), cwd=cwd, timeout=600)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}:\n{(done.stdout + done.stderr)[-3000:]}")
    return elapsed, done.stdout


def rollout_cmd(*args: str) -> list[str]:
    return [PYTHON, "-P", "-c", "from rollout.cli.commands import main; main()", *args]


def heaviest_imports(args: list[str], top: int = 8) -> list[str]:
    """Where a command's imports go (``-X importtime``): each package's own import time summed
    (its submodules included, nothing counted twice), the heaviest first, in ms."""
    cmd = [PYTHON, "-X", "importtime", *rollout_cmd(*args)[1:]]
    done = subprocess.run(cmd, capture_output=True, text=True, env=rollout_env(), timeout=600)
    own: dict[str, int] = {}
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[0].split(":")[-1].strip().isdigit():
            package = parts[2].strip().split(".")[0]
            own[package] = own.get(package, 0) + int(parts[0].split(":")[-1])
    total = max(sum(own.values()), 1)
    lines = [f"    imports {total / 1000:7.1f} ms in all"]
    heaviest = sorted(own.items(), key=lambda kv: kv[1], reverse=True)[:top]
    lines += [f"    {us / 1000:7.1f} ms {us / total:5.1%}  {name}" for name, us in heaviest]
    return lines


def startup(runs: int, small: Path) -> list[str]:
    """``rollout --help`` and ``rollout plan`` against the bare interpreter, rounds interleaved."""
    bare, helped, planned = Series("python -c pass"), Series("rollout --help"), Series("rollout plan (10 plants)")
    plan = ["-C", str(small), "plan", "--json", "--release", scale.RELEASE]
    for _ in range(runs + 1):  # round 0 warms the byte-code caches
        bare.times.append(timed([PYTHON, "-c", "pass"])[0])
        helped.times.append(timed(rollout_cmd("--help"))[0])
        planned.times.append(timed(rollout_cmd(*plan))[0])
    for s in (bare, helped, planned):
        del s.times[0]
    out = [
        table(f"Start-up, fresh processes, medians of {runs} after a warm-up (seconds)", [bare, helped, planned], bare)
    ]
    for s in (helped, planned):
        verdict = "met" if s.median < STARTUP_TARGET else "NOT MET"
        out.append(
            f"  {s.name} < {STARTUP_TARGET} s: {s.median:.3f} s  {verdict}  "
            f"({s.median - bare.median:.3f} s over the bare interpreter)"
        )
    out.append("  where rollout --help's start-up goes (python -X importtime, top-level imports):")
    out += heaviest_imports(["--help"])
    out.append("  where rollout plan's start-up goes:")
    out += heaviest_imports(plan)
    return out


def seed_state(project: Path) -> int:
    """Two deploys of every plant, with the events a deploy writes, adopted in one transaction."""
    from rollout.service import open_project, open_state

    loaded = open_project(project)
    journal = open_state(loaded)
    records, events = [], []
    start = time.time() - 7200
    for n, release in enumerate(RELEASES):
        rid = f"bench-deploy-{n}"
        t = start + n * 3600
        records.append(RolloutRecord(rid, "deploy", release, f"{n:040x}", t, "bench@ci", {}))
        events.append(JournalEvent(0, rid, Event("rollout.created", "", release=release, time=t)))
        for plant in loaded.plants.values():
            events += plant_events(rid, plant.name, release, f"{n:040x}", t)
        events.append(JournalEvent(0, rid, Event("rollout.finished", "", release=release, time=t + 60)))
    adopted = journal.adopt(records, events)
    assert len(adopted) == len(records), adopted
    return len(events)


def plant_events(rid: str, plant: str, release: str, commit: str, t: float) -> list[JournalEvent]:
    kinds: list[tuple[str, str | None, dict[str, object]]] = [("plant.locked", None, {}), ("plant.started", None, {})]
    kinds += [("plant.before", None, {"before": {}}), ("plant.preflight", None, {})]
    for layer in LAYERS:
        kinds += [("layer.staging", layer, {}), ("layer.staged", layer, {}), ("layer.activating", layer, {})]
        kinds += [("layer.activated", layer, {"commit": commit}), ("layer.checking", layer, {})]
        kinds += [("check.result", layer, {"check": "c", "outcome": "passed"})]
    kinds += [("plant.done", None, {"changed": True}), ("plant.unlocked", None, {})]
    return [
        JournalEvent(0, rid, Event(kind, plant, layer, release=release, detail=detail, time=t + 0.01 * i))  # type: ignore[arg-type]
        for i, (kind, layer, detail) in enumerate(kinds)
    ]


def status(runs: int, project: Path) -> list[str]:
    args = ["-C", str(project), "status", "--json"]
    series = Series(f"rollout status, {sum(1 for _ in (project / 'plants').iterdir()):,} plants")
    rows: list[dict[str, object]] = []
    # The first run, not counted, fills a plant cache of this run's own: status of plants unchanged.
    env = {**rollout_env(), "ROLLOUT_CACHE_DIR": tempfile.mkdtemp(prefix="rollout-speed-cache-")}
    for _ in range(runs + 1):
        elapsed, out = timed(rollout_cmd(*args), env)
        series.times.append(elapsed)
        rows = [json.loads(line) for line in out.splitlines() if '"type": "host"' in line]
    del series.times[0]
    shutil.rmtree(env["ROLLOUT_CACHE_DIR"], ignore_errors=True)
    assert not (project / ".rollout" / "hosts").exists(), "a host was asked: its folder was made"
    releases = {r["release"] for r in rows}
    assert releases == {scale.RELEASE} and all(r["source"] == "state" for r in rows), releases
    bare = Series("python -c pass", [timed([PYTHON, "-c", "pass"])[0] for _ in range(runs)])
    verdict = "met" if series.median < STATUS_TARGET else "NOT MET"
    return [
        table(
            f"Status from the state, no host asked ({len(rows):,} host rows), medians of {runs} (seconds)",
            [series, bare],
            series,
        ),
        f"  rollout status < {STATUS_TARGET} s: {series.median:.3f} s  {verdict}",
        "  its hot path:",
        *profile(["-C", str(project), "status", "--json"]),
    ]


def profile(args: list[str], top: int = 12) -> list[str]:
    """Where one in-process run of the CLI spends its CPU (cProfile): rollout's functions by their
    share with callees, then every function by its own share. Serial: ``fan_out`` does the work in
    this process when another thread runs (a fork would copy one thread only), so the forked
    workers' share is in the profile too."""
    from rollout.cli import run

    idle = threading.Event()
    helper = threading.Thread(target=idle.wait, daemon=True)
    helper.start()
    profiler = cProfile.Profile(time.process_time)
    real = sys.stdout
    sys.stdout = io.StringIO()
    try:
        code = profiler.runcall(run, args)
    finally:
        sys.stdout = real
        idle.set()
    assert code == 0, f"rollout {' '.join(args)} exited {code}"
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = max(max(ct for _, _, _, ct, _ in stats.values()), 1e-9)  # the whole command's, callees included
    ours = [(ct, fn) for fn, (_, _, _, ct, _) in stats.items() if "/rollout/" in fn[0] and fn[2] not in SKIP]
    own = sorted(((tt, fn) for fn, (_, _, tt, _, _) in stats.items()), reverse=True)[: top // 2]
    lines = [f"    CPU {total:.2f} s in all (profiled, serial; shares of it); with callees:"]
    lines += [f"    {ct / total:6.1%}  {_where(fn)}" for ct, fn in sorted(ours, reverse=True)[:top]]
    lines.append("    own time:")
    lines += [f"    {tt / total:6.1%}  {_where(fn)}" for tt, fn in own]
    return lines


SKIP = {"run", "main", "<module>", "invoke", "<lambda>", "_attempt", "get_command"}
"""Wrappers whose share is the whole command's: left out of the list."""


def _where(fn: tuple[str, int, str]) -> str:
    path = fn[0].split("/rollout/", 1)[-1] if "/rollout/" in fn[0] else Path(fn[0]).name
    return f"{fn[2]} ({path}:{fn[1]})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--plants", type=int, default=1000)
    parser.add_argument("--keep", type=Path, default=None, help="generate into (and reuse) this folder")
    args = parser.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="rollout-speed-"))
    try:
        small, big = work / "plants-10" / "project", work / f"plants-{args.plants}" / "project"
        for size, root in ((10, small), (args.plants, big)):
            if not (root / ".git").exists():
                shutil.rmtree(root.parent, ignore_errors=True)
                scale.generate(root, size)
        shutil.rmtree(big / ".rollout", ignore_errors=True)
        print(f"seeded {seed_state(big):,} events", file=sys.stderr, flush=True)
        print(f"rollout speed benchmark: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
        print("\n".join(startup(args.runs, small)))
        print()
        print("\n".join(status(args.runs, big)))
        print()
        print(f"Hot paths of plan and validate at {args.plants:,} plants (bench/scale.py times them up to 10,000)")
        for verb in ("plan", "validate"):
            print(f"  rollout {verb}:")
            print("\n".join(profile(["-C", str(big), verb, "--json", "--release", scale.RELEASE])))
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
