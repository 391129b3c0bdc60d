"""A real PostgreSQL server for the tests: Debian's binaries, a temporary folder, a loopback port.

PostgreSQL refuses to run as root (and CI runs as root), so ``initdb`` and ``pg_ctl`` run as
the ``postgres`` user the package creates, in a folder that user owns. Tests connect over
TCP as ``rollout_tester``, a role that is not a superuser: privileges bind it, so a test can
take its write access away; ``rollout_secret`` must give a password. Each test gets a
database of its own (``create_database``).
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from fleet import alive

SUPERUSER = "postgres"
TESTER = "rollout_tester"
SECRET_USER, SECRET = "rollout_secret", "s3cret-pw"
"""A role that must give its password (scram), for the tests of where passwords come from."""
HBA = f"""
local all all trust
host all {SECRET_USER} 127.0.0.1/32 scram-sha-256
host all all 127.0.0.1/32 trust
"""
START_TIMEOUT = 60
"""Seconds initdb, start and stop may each take on a slow 2-core machine."""
_names = itertools.count(1)


def pg_bin() -> Path:
    """The highest installed version's binaries (``/usr/lib/postgresql/<version>/bin``)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise RuntimeError("no PostgreSQL server under /usr/lib/postgresql: run ./scripts/setup")
    return found[-1].parent


def free_port() -> int:
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PgServer:
    """One running server, stopped by ``stop``."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.data = root / "data"
        self.port = port

    def url(self, database: str, user: str = TESTER) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection[Any]:
        """A superuser's connection (autocommit) for setting up and breaking things."""
        return psycopg.connect(self.url(database, SUPERUSER), autocommit=True, connect_timeout=10)

    def create_database(self) -> str:
        """A new, empty database owned by the tester; its name."""
        name = f"t_{next(_names)}"
        with self.connect() as db:
            db.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(TESTER)))
        return name

    def drop_database(self, name: str) -> None:
        with self.connect() as db:
            db.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _as_postgres(str(pg_bin() / "pg_ctl"), "-D", str(self.data), *args)

    def stop(self) -> None:
        """A fast stop; the postmaster killed if that did not end it; the folder removed."""
        pid = self._postmaster_pid()
        done = self.pg_ctl("-m", "fast", "-w", "-t", str(START_TIMEOUT), "stop")
        if done.returncode != 0 and pid is not None:
            _kill(pid)
        shutil.rmtree(self.root, ignore_errors=True)

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None


def start_server(durable: bool = False) -> PgServer:
    """initdb into a new temporary folder and start a server on a free loopback port.

    ``durable``: the server's own defaults (fsync on), as a team's server runs, for benchmarks."""
    root = Path(tempfile.mkdtemp(prefix="rollout-pg-", dir="/tmp"))
    postgres = pwd.getpwnam(SUPERUSER)
    os.chown(root, postgres.pw_uid, postgres.pw_gid)
    server = PgServer(root, free_port())
    initdb = _as_postgres(str(pg_bin() / "initdb"), "-D", str(server.data), "-A", "trust", "-U", SUPERUSER, "-N")
    if initdb.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {initdb.stdout}{initdb.stderr}")
    (server.data / "pg_hba.conf").write_text(HBA)
    # fsync off: the tests never cut the power, and a 2-core CI machine spends its time elsewhere.
    options = f"-c listen_addresses=127.0.0.1 -p {server.port} -k {root} -c max_connections=300"
    if not durable:
        options += " -c fsync=off"
    started = server.pg_ctl("-o", options, "-l", str(root / "log"), "-w", "-t", str(START_TIMEOUT), "start")
    if started.returncode != 0:
        log = (root / "log").read_text(errors="replace") if (root / "log").exists() else ""
        server.stop()
        raise RuntimeError(f"pg_ctl start failed: {started.stdout}{started.stderr}{log}")
    with server.connect() as db:
        db.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(TESTER)))
        db.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(SECRET_USER), sql.Literal(SECRET)))
    return server


@contextmanager
def running_server(durable: bool = False) -> Iterator[PgServer]:
    server = start_server(durable)
    try:
        yield server
    finally:
        server.stop()


def _as_postgres(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", SUPERUSER, "--", *command],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT + 30,
        cwd="/tmp",  # the postgres user may not be able to enter the test's working folder
    )


def _kill(pid: int) -> None:
    """SIGQUIT (immediate shutdown), then SIGKILL if the postmaster is still there after 10 s."""
    for sig, wait in ((signal.SIGQUIT, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not alive(pid):  # gone, or a zombie that holds no port or file any more (its reaping waits on init)
                return
            time.sleep(0.05)
