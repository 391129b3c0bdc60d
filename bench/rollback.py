"""Benchmark 2: rollback, the time from a failed check to the plant healthy on its previous
release, for a 1 MB and a 100 MB bundle, over SSH; Ansible's rollback playbook and
Capistrano's ``deploy:rollback`` on the same host in the same run.

    .venv/bin/python bench/rollback.py [--runs 5] [--sizes 1,100]

One plant of one host. rollout deploys a release whose check fails; the figure is the
gap between the journaled failed check and the journaled ``plant.rolled_back``, which
comes after the old release is switched back and its own check passed (read from the
events the command prints). The baselines have no automatic rollback: their figure is
the run of their rollback (switch back, then the same check), which a pipeline would
start on the failed check. Round 0 is a warm-up; medians of the others.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fleetproject import CHECK, Plants, bundle_files, make_project, tarball  # noqa: E402
from timing import Series, fleet, run_rollout, table  # noqa: E402

from bench import baselines as bl  # noqa: E402

FILES = 50


def rollout_rollback_time(events: list[dict[str, object]]) -> float:
    """From the failed check to the plant back and checked on its previous release."""
    failed = [e for e in events if e.get("kind") == "check.result" and _outcome(e) == "failed"]
    back = [e for e in events if e.get("kind") == "plant.rolled_back"]
    if not failed or not back:
        raise RuntimeError("the bad release was not rolled back: " + str([e.get("kind") for e in events][-8:]))
    return float(back[0]["time"]) - float(failed[0]["time"])  # type: ignore[arg-type]


def _outcome(event: dict[str, object]) -> object:
    detail = event.get("detail")
    return detail.get("outcome") if isinstance(detail, dict) else None


def size_round(megabytes: int, runs: int) -> list[Series]:
    size = megabytes * 1_000_000
    with fleet(1, first=151) as (ssh_fleet, base):
        # r0 good, r1 fails its check (for rollout); the baselines deploy a good r1.
        project = make_project(base / "project", ssh_fleet, Plants(1, 1), 2, bad=frozenset({1}), files=FILES, size=size)
        good = [tarball(bundle_files(1000 + r, FILES, size), base / f"r{r}.tgz") for r in range(2)]
        ssh = bl.Ssh(ssh_fleet.known_hosts, ssh_fleet.client_key)
        host = ssh_fleet.hosts[0]
        ansible = [bl.Target(host.address, 2222, str(host.home / "ansible" / "app"))]
        cap = [bl.Target(host.address, 2222, str(host.home / "capistrano" / "app"))]
        work = base / "work"
        _, code, _ = run_rollout("deploy", "-C", str(project), "--release", "r0", "--yes")
        assert code == 0
        bl.ansible_deploy(work, ssh, ansible, good[0], "r0", CHECK, 1)
        bl.ansible_deploy(work, ssh, ansible, good[1], "r1", CHECK, 1)
        bl.capistrano_deploy(work, ssh, cap, good[0], CHECK, 1)
        series = {name: Series(name) for name in ("rollout (automatic)", "ansible-playbook rollback", "capistrano")}
        for r in range(runs + 1):
            _, code, events = run_rollout("deploy", "-C", str(project), "--release", "r1", "--yes")
            assert code == 1, "the bad release must fail and be rolled back"
            figures = {"rollout (automatic)": rollout_rollback_time(events)}
            figures["ansible-playbook rollback"] = bl.ansible_rollback(work, ssh, ansible, "r0", CHECK, 1)
            _relink(Path(ansible[0].folder), "r1")  # back on r1 for the next round, as its deploy left it
            bl.capistrano_deploy(work, ssh, cap, good[1], CHECK, 1)  # cap's rollback removes what it leaves
            figures["capistrano"] = bl.capistrano_rollback(work, ssh, cap, CHECK, 1)
            for name, value in figures.items():
                print(f"    {megabytes} MB round {r} {name}: {value:.3f} s", file=sys.stderr, flush=True)
                if r > 0:
                    series[name].times.append(value)
        return list(series.values())


def _relink(folder: Path, release: str) -> None:
    (folder / ".current.bench").symlink_to(f"releases/{release}")
    (folder / ".current.bench").replace(folder / "current")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", default="1,100")
    args = parser.parse_args()
    mine: dict[int, float] = {}
    for megabytes in (int(x) for x in args.sizes.split(",")):
        series = size_round(megabytes, args.runs)
        mine[megabytes] = series[0].median
        title = f"Rollback of one plant over SSH, {megabytes} MB bundle, medians of {args.runs} (seconds)"
        print(table(title, series, series[0]))
        verdict = "met" if series[0].median < 0.3 else "NOT MET"
        print(f"  rollout under 0.3 s per plant: {series[0].median:.3f}  {verdict}\n", flush=True)
    if len(mine) > 1:
        small, big = min(mine), max(mine)
        ratio = mine[big] / mine[small]
        print(f"Flat in bundle size: {big} MB / {small} MB = {ratio:.2f}  {'met' if ratio < 1.5 else 'NOT MET'}")


if __name__ == "__main__":
    main()
