"""Benchmark 4: wall time of a staged rollout as plants and waves grow, over real SSH hosts.

    .venv/bin/python bench/staged.py [--runs 5] [--configs 10x4,20x4,40x4,40x1,40x2,40x8]

A config PxW is P plants (one host each, one sshd per host on 127.0.1.161...) in W
equal waves, each wave's plants at once (parallelism = wave size). Each round deploys a
new release (20 files, ~200 KB per host: this measures orchestration, not transfer) with
the whole ``rollout deploy`` command; round 0 is a warm-up, medians of the others.
The claim: time grows with the number of waves, not with the number of plants.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fleetproject import Plants, make_project  # noqa: E402
from timing import fleet, run_rollout  # noqa: E402

FILES, SIZE = 20, 200_000


def one(plants: int, waves: int, runs: int) -> list[float]:
    with fleet(plants, first=161) as (ssh_fleet, base):
        project = make_project(
            base / "project",
            ssh_fleet,
            Plants(plants, 1),
            runs + 1,
            waves=waves,
            parallelism=-(-plants // waves),
            files=FILES,
            size=SIZE,
        )
        times = []
        for r in range(runs + 1):
            elapsed, code, events = run_rollout("deploy", "-C", str(project), "--release", f"r{r}", "--yes")
            done = sum(1 for e in events if e.get("kind") == "plant.done")
            if code != 0 or done != plants:
                raise RuntimeError(f"{plants}x{waves} r{r}: exit {code}, {done} plants done")
            print(f"    {plants} plants / {waves} waves round {r}: {elapsed:.3f} s", file=sys.stderr, flush=True)
            if r > 0:
                times.append(elapsed)
        return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--configs", default="10x4,20x4,40x4,40x1,40x2,40x8")
    args = parser.parse_args()
    medians: dict[tuple[int, int], float] = {}
    print(f"Staged rollout over SSH, one host per plant, {FILES} files / {SIZE // 1000} KB, medians of {args.runs}")
    print(f"  {'plants':>6} {'waves':>5} {'median s':>9} {'s / wave':>9} {'ms / plant':>10}")
    for spec in args.configs.split(","):
        plants, waves = (int(x) for x in spec.split("x"))
        medians[(plants, waves)] = median = statistics.median(one(plants, waves, args.runs))
        print(
            f"  {plants:>6} {waves:>5} {median:>9.3f} {median / waves:>9.3f} {1000 * median / plants:>10.1f}",
            flush=True,
        )
    if {(10, 4), (40, 4)} <= set(medians):
        ratio = medians[(40, 4)] / medians[(10, 4)]
        print(f"  4x the plants in 4 waves (40 vs 10): time x{ratio:.2f} (x4 would be growth with plants)")
    if {(40, 1), (40, 8)} <= set(medians):
        ratio = medians[(40, 8)] / medians[(40, 1)]
        print(f"  8x the waves for 40 plants (8 vs 1): time x{ratio:.2f}")


if __name__ == "__main__":
    main()
