"""Run every baseline once over a real SSH fleet and print its timings (a smoke run, not the benchmark).

Usage: .venv/bin/python bench/baselines/try_baselines.py [--count 20] [--parallelism 20]
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from bench.baselines import (  # noqa: E402 (needs the path above)
    Ssh,
    Target,
    ansible_deploy,
    ansible_rollback,
    capistrano_deploy,
    capistrano_rollback,
    floor_fabric_deploy,
    floor_fabric_rollback,
    floor_openssh_deploy,
    floor_openssh_rollback,
)
from fleet import PORT, Fleet  # noqa: E402

CHECK = "grep -qx ok current/status.txt"


def make_tarball(path: Path, files: int = 50, size: int = 1_000_000, seed: int = 7) -> None:
    """``files`` files of about ``size`` bytes in all, half random bytes and half text, not trivially compressible."""
    rng = random.Random(seed)
    words = ["sensor", "line", "plant", "ingest", "gateway", "kpi", "oee", "scrap", "temperature", "pressure"]
    each = size // (files - 1)
    with tarfile.open(path, "w:gz") as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tar.addfile(info, io.BytesIO(data))

        add("status.txt", b"ok\n")
        for i in range(files - 1):
            if i % 2:
                data = rng.randbytes(each)
            else:
                text = " ".join(f"{rng.choice(words)}={rng.randint(0, 99999)}" for _ in range(each // 10))
                data = text.encode()[:each]
            add(f"{'data' if i % 2 else 'conf'}/file{i:02}.{'bin' if i % 2 else 'txt'}", data)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--parallelism", type=int, default=20)
    args = parser.parse_args()
    n = args.parallelism
    with tempfile.TemporaryDirectory(prefix="baselines-") as tmp:
        base = Path(tmp)
        tarball = base / "bundle.tgz"
        make_tarball(tarball)
        print(f"bundle: {tarball.stat().st_size} bytes gzip, 50 files", flush=True)
        fleet = Fleet(base / "fleet", args.count, first=101)
        try:
            fleet.start()
            ssh = Ssh(known_hosts=fleet.known_hosts, key=fleet.client_key)

            def targets(kind: str) -> list[Target]:
                return [Target(h.address, PORT, f"{h.home}/bench/{kind}") for h in fleet.hosts]

            work = base / "work"
            a, c, f, o = targets("ansible"), targets("capistrano"), targets("fabric"), targets("openssh")
            steps: list[tuple[str, Callable[[], float]]] = [
                ("ansible deploy r1", lambda: ansible_deploy(work, ssh, a, tarball, "r1", CHECK, n)),
                ("ansible deploy r2", lambda: ansible_deploy(work, ssh, a, tarball, "r2", CHECK, n)),
                ("ansible rollback r1", lambda: ansible_rollback(work, ssh, a, "r1", CHECK, n)),
                ("capistrano deploy 1", lambda: capistrano_deploy(work, ssh, c, tarball, CHECK, n)),
                ("capistrano deploy 2", lambda: capistrano_deploy(work, ssh, c, tarball, CHECK, n)),
                ("capistrano rollback", lambda: capistrano_rollback(work, ssh, c, CHECK, n)),
                ("floor fabric deploy r1", lambda: floor_fabric_deploy(ssh, f, tarball, "r1", n)),
                ("floor fabric deploy r2", lambda: floor_fabric_deploy(ssh, f, tarball, "r2", n)),
                ("floor fabric rollback r1", lambda: floor_fabric_rollback(ssh, f, "r1", n)),
                ("floor openssh deploy r1", lambda: floor_openssh_deploy(ssh, o, tarball, "r1", n)),
                ("floor openssh deploy r2", lambda: floor_openssh_deploy(ssh, o, tarball, "r2", n)),
                ("floor openssh rollback r1", lambda: floor_openssh_rollback(ssh, o, "r1", n)),
            ]
            print(f"{args.count} targets, parallelism {n}", flush=True)
            for name, step in steps:
                started = time.monotonic()
                elapsed = step()
                print(f"{name:28} {elapsed:7.2f} s  (with verification {time.monotonic() - started:.2f} s)", flush=True)
        finally:
            fleet.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
