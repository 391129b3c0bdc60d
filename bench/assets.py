"""Benchmark: what the asset probe costs a deploy. The same fleet of real SSH hosts, the same
project, deploys of fresh releases with the probe on and off, alternating, in the same run.

    .venv/bin/python bench/assets.py [--runs 6] [--scenario 10x2]

Each round deploys a new release (nothing staged can be reused) twice: once with
``assets: {collect: true}`` (the default: each host's first layer read also prints its
os-release, kernel, architecture and every dpkg package), once with ``collect: false``;
the order alternates round by round so drift favours neither. Round 0 is a warm-up.
The hosts are this machine's sshd servers, so each reports this machine's packages
(``dpkg-query -W``: several hundred lines per host).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fleetproject import Plants, make_project  # noqa: E402
from timing import Series, fleet, run_rollout, table  # noqa: E402

TARGET = 1.05
"""A deploy may not get more than 5 % slower with the probe."""


def _set_collect(project: Path, on: bool) -> None:
    config = project / "rollout.yaml"
    lines = [line for line in config.read_text().splitlines() if not line.startswith("assets:")]
    config.write_text("\n".join([*lines, f"assets: {{collect: {'true' if on else 'false'}}}"]) + "\n")


def scenario(plants: Plants, runs: int) -> tuple[Series, Series]:
    hosts = plants.count * plants.hosts_per_plant
    releases = 2 * (runs + 1)
    with fleet(hosts) as (ssh_fleet, base):
        project = make_project(base / "project", ssh_fleet, plants, releases)
        on, off = Series("deploy with the asset probe"), Series("deploy without it")
        release = 0
        for r in range(runs + 1):
            for series in (on, off) if r % 2 == 0 else (off, on):
                _set_collect(project, series is on)
                elapsed, code, _ = run_rollout("deploy", "-C", str(project), "--release", f"r{release}", "--yes")
                release += 1
                if code != 0:
                    raise RuntimeError(f"rollout deploy r{release - 1} exited {code}")
                print(f"    round {r} {series.name}: {elapsed:.3f} s", file=sys.stderr, flush=True)
                if r > 0:
                    series.times.append(elapsed)
        return on, off


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--scenario", default="10x2")
    args = parser.parse_args()
    count, per = (int(x) for x in args.scenario.split("x"))
    on, off = scenario(Plants(count, per), args.runs)
    title = f"Deploy with and without the asset probe: {count} plants x {per} host(s), medians of {args.runs} (s)"
    print(table(title, [on, off], off))
    ratio = on.median / off.median
    # Rounds pair the two deploys back to back: the median of each round's ratio is the least
    # moved by a machine whose load drifts during the run.
    paired = statistics.median(a / b for a, b in zip(on.times, off.times, strict=True))
    for name, value in (("medians", ratio), ("paired rounds", paired)):
        verdict = "met" if value <= TARGET else "NOT MET"
        print(f"  with / without <= {TARGET:.2f} ({name}) {value:6.3f}  {verdict}", flush=True)


if __name__ == "__main__":
    main()
