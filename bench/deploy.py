"""Benchmark 1: deploying a release to a fleet of real SSH hosts, rollout against Ansible,
Capistrano and a bare floor, on the same hosts, bundle and parallelism, in the same run.

    .venv/bin/python bench/deploy.py [--runs 5] [--scenarios 20x1,5x4]

A scenario PxH is P plants of H hosts (P*H sshd servers on 127.0.1.101...). Each round
deploys a new release (fresh bytes: nothing can be reused) with every mechanism in turn;
round 0 is a warm-up; medians of the others. rollout is timed as the whole command
(start-up, rendering, journal, locks, preflight, checks); every baseline does the same
host work (one tarball per host unpacked into releases/, the link switched atomically,
the same check) with forks / processes equal to the hosts rollout works on at once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fleetproject import CHECK, Fleet, Plants, bundle_files, make_project, tarball  # noqa: E402
from timing import Series, fleet, run_rollout, table  # noqa: E402

from bench import baselines as bl  # noqa: E402


def scenario(plants: Plants, runs: int) -> list[Series]:
    hosts = plants.count * plants.hosts_per_plant
    with fleet(hosts) as (ssh_fleet, base):
        project = make_project(base / "project", ssh_fleet, plants, runs + 1)
        balls = [tarball(bundle_files(1000 + r), base / f"r{r}.tgz") for r in range(runs + 1)]
        ssh = bl.Ssh(ssh_fleet.known_hosts, ssh_fleet.client_key)
        mechanisms = _mechanisms(ssh_fleet, ssh, base, project, balls, hosts)
        series = {name: Series(name) for name in mechanisms}
        for r in range(runs + 1):
            for name, deploy in mechanisms.items():
                elapsed = deploy(r)
                print(f"    round {r} {name}: {elapsed:.3f} s", file=sys.stderr, flush=True)
                if r > 0:
                    series[name].times.append(elapsed)
        return list(series.values())


def _mechanisms(
    ssh_fleet: Fleet, ssh: bl.Ssh, base: Path, project: Path, balls: list[Path], concurrency: int
) -> dict[str, Callable[[int], float]]:
    def targets(kind: str) -> list[bl.Target]:
        return [bl.Target(h.address, 2222, str(h.home / kind / "app")) for h in ssh_fleet.hosts]

    def rollout(r: int) -> float:
        elapsed, code, events = run_rollout("deploy", "-C", str(project), "--release", f"r{r}", "--yes")
        if code != 0 or not any(e.get("kind") == "rollout.finished" for e in events):
            raise RuntimeError(f"rollout deploy r{r} did not finish cleanly (exit {code})")
        return elapsed

    work = base / "work"
    return {
        "rollout deploy": rollout,
        "ansible-playbook": lambda r: bl.ansible_deploy(
            work, ssh, targets("ansible"), balls[r], f"r{r}", CHECK, concurrency
        ),
        "capistrano": lambda r: bl.capistrano_deploy(work, ssh, targets("capistrano"), balls[r], CHECK, concurrency),
        "floor: fabric put + tar + mv -T": lambda r: bl.floor_fabric_deploy(
            ssh, targets("fabric"), balls[r], f"r{r}", concurrency
        ),
        "floor: openssh stdin tar + mv -T": lambda r: bl.floor_openssh_deploy(
            ssh, targets("openssh"), balls[r], f"r{r}", concurrency
        ),
    }


def verdict(series: list[Series]) -> list[str]:
    by = {s.name: s.median for s in series}
    mine = by["rollout deploy"]
    floor = min(v for k, v in by.items() if k.startswith("floor"))
    checks = [
        ("Ansible / rollout >= 10", by["ansible-playbook"] / mine, by["ansible-playbook"] / mine >= 10),
        ("Capistrano / rollout >= 3", by["capistrano"] / mine, by["capistrano"] / mine >= 3),
        ("rollout / floor <= 2", mine / floor, mine / floor <= 2),
    ]
    return [f"  {name:<28} {value:6.2f}  {'met' if ok else 'NOT MET'}" for name, value, ok in checks]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scenarios", default="20x1,5x4")
    args = parser.parse_args()
    for spec in args.scenarios.split(","):
        count, per = (int(x) for x in spec.split("x"))
        series = scenario(Plants(count, per), args.runs)
        title = (
            f"Deploy: {count} plants x {per} host(s), ~50 files / 1 MB per host, {count * per} hosts at once, "
            f"medians of {args.runs} after a warm-up (seconds)"
        )
        print(table(title, series, series[0]))
        print("\n".join(verdict(series)), flush=True)
        print()


if __name__ == "__main__":
    main()
