"""Baseline deployment mechanisms that the benchmark compares rollout against.

Each baseline does the work of rollout's built-in activation on a list of SSH targets:
unpack one bundle tarball per host into ``<dir>/releases/<release>/``, switch
``<dir>/current`` atomically, run a check command in ``<dir>``. Rollback switches
``current`` back and checks again. Host keys are always verified.

- Ansible: ``ansible/deploy.yml`` and ``ansible/rollback.yml`` run by ``ansible-playbook``.
- Capistrano (Debian package): ``capistrano/``, one ``cap`` process per host (its
  ``deploy_to`` is one per process), a small SCM plugin that uploads the tarball.
- Floor: only the transfer and the link switch, over Fabric/paramiko or the OpenSSH client.

Every function returns the wall seconds of the work itself (around the subprocesses or
threads; set-up, clean-up and verification excluded) and raises RuntimeError with the
tool's output on failure. Afterwards it checks on the host folders (local folders, the
fleet runs on this machine) that every target's ``current`` is the expected release.
"""

from __future__ import annotations

import io
import json
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import fabric
import paramiko

CAPISTRANO_PACKAGES = ["capistrano", "ruby-ed25519", "ruby-bcrypt-pbkdf"]

HERE = Path(__file__).resolve().parent
ANSIBLE_DIR = HERE / "ansible"
CAPISTRANO_DIR = HERE / "capistrano"
ANSIBLE_PLAYBOOK = HERE.parents[1] / ".venv" / "bin" / "ansible-playbook"
CAP = "/usr/bin/cap"

RUN_TIMEOUT = 600.0  # one ansible-playbook or cap run; far above the ~20 s the slowest takes
HOST_TIMEOUT = 120.0  # one host's transfer and switch in the floor baselines
CONNECT_TIMEOUT = 10
FLOOR_KEX = "curve25519-sha256,curve25519-sha256@libssh.org"


@dataclass(frozen=True)
class Target:
    address: str
    port: int
    folder: str  # absolute deploy folder on the host


@dataclass(frozen=True)
class Ssh:
    known_hosts: Path
    key: Path
    user: str = "root"


# ---------------------------------------------------------------- Ansible


def ansible_deploy(
    work: Path, ssh: Ssh, targets: list[Target], tarball: Path, release: str, check: str, forks: int
) -> float:
    """``ansible-playbook ansible/deploy.yml``: unarchive into releases/<release>, switch, check."""
    extra = {"release": release, "tarball": str(tarball.resolve()), "check": check}
    elapsed = _ansible(work, ssh, targets, "deploy.yml", extra, forks)
    verify_current(targets, release)
    return elapsed


def ansible_rollback(work: Path, ssh: Ssh, targets: list[Target], previous: str, check: str, forks: int) -> float:
    """``ansible-playbook ansible/rollback.yml``: switch back to releases/<previous>, check."""
    elapsed = _ansible(work, ssh, targets, "rollback.yml", {"previous": previous, "check": check}, forks)
    verify_current(targets, previous)
    return elapsed


def _ansible(work: Path, ssh: Ssh, targets: list[Target], playbook: str, extra: dict[str, str], forks: int) -> float:
    work.mkdir(parents=True, exist_ok=True)
    run = Path(tempfile.mkdtemp(prefix="ansible-", dir=work))
    # Control sockets must fit in sun_path (108 bytes) with Ansible's 40-character %C name.
    control = run / "cp" if len(str(run)) < 60 else Path(tempfile.mkdtemp(prefix="cp-", dir="/tmp"))
    for sub in ("home", "tmp", "remote-tmp", "cp"):
        (run / sub).mkdir(exist_ok=True)
    control.mkdir(exist_ok=True)
    hosts = {
        f"t{i}": {"ansible_host": t.address, "ansible_port": t.port, "deploy_dir": t.folder}
        for i, t in enumerate(targets)
    }
    (run / "inventory.json").write_text(json.dumps({"targets": {"hosts": hosts}}, indent=1))
    (run / "vars.json").write_text(json.dumps(extra))
    ssh_args = " ".join(
        [
            "-F /dev/null -o ControlMaster=auto -o ControlPersist=60s",  # Ansible's defaults minus -C
            *(shlex.join(["-o", o]) for o in _verified_options(ssh)),
        ]
    )
    env = {
        **_clean_env(),
        "ANSIBLE_HOME": str(run / "home"),
        "ANSIBLE_LOCAL_TEMP": str(run / "tmp"),
        "ANSIBLE_REMOTE_TEMP": str(run / "remote-tmp"),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control),
        "ANSIBLE_SSH_ARGS": ssh_args,
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_PRIVATE_KEY_FILE": str(ssh.key),
        "ANSIBLE_REMOTE_USER": ssh.user,
        "ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3",  # the hosts' python; skips discovery
        "ANSIBLE_TIMEOUT": str(CONNECT_TIMEOUT),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
    }
    command = [
        str(ANSIBLE_PLAYBOOK),
        "-i",
        str(run / "inventory.json"),
        "-f",
        str(forks),
        "-e",
        f"@{run / 'vars.json'}",
        str(ANSIBLE_DIR / playbook),
    ]
    try:
        start = time.monotonic()
        code, output = _run(command, env=env, cwd=run, timeout=RUN_TIMEOUT)
        elapsed = time.monotonic() - start
    finally:
        _close_masters(control)
        if control != run / "cp":
            shutil.rmtree(control, ignore_errors=True)
    (run / "output.txt").write_text(output)
    if code != 0:
        raise RuntimeError(f"ansible-playbook {playbook} exited {code}:\n{output}")
    return elapsed


def _close_masters(control: Path) -> None:
    """End the ControlPersist masters of one run, so that no run reuses another's connections."""
    for socket in control.iterdir():
        # -O exit talks to the master through the socket only; the host name is not used.
        _run(["ssh", "-F", "/dev/null", "-S", str(socket), "-O", "exit", "master"], timeout=10)
    # A master that did not answer (or was still starting) is killed by pid: its title names the socket.
    deadline = time.monotonic() + 10
    while (pids := _pids_with(str(control))) and time.monotonic() < deadline:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        time.sleep(0.05)


# ---------------------------------------------------------------- Capistrano


def capistrano_deploy(
    work: Path, ssh: Ssh, targets: list[Target], tarball: Path, check: str, parallelism: int
) -> float:
    """``cap bench deploy``, one process per host, at most ``parallelism`` at a time.

    Capistrano names the release by its start time (UTC, to the second); if a target
    already has a release of this second, the start waits for the next one (not timed),
    as two deploys within one second would otherwise land in the same folder.
    """
    before = {t: set(capistrano_releases(t)) for t in targets}
    newest = max((r for rs in before.values() for r in rs), default="")
    while datetime.now(UTC).strftime("%Y%m%d%H%M%S") <= newest:
        time.sleep(0.05)
    extra = {"BENCH_TARBALL": str(tarball.resolve())}
    elapsed = _cap(work, ssh, targets, "deploy", extra, check, parallelism)
    wrong = []
    for t in targets:
        current, releases = capistrano_current(t), capistrano_releases(t)
        if current is None or current in before[t] or current != releases[-1]:
            wrong.append(f"{t.address}:{t.folder}: current={current}, releases={releases}")
    if wrong:
        raise RuntimeError("capistrano deploy did not switch to a new release:\n" + "\n".join(wrong))
    return elapsed


def capistrano_rollback(work: Path, ssh: Ssh, targets: list[Target], check: str, parallelism: int) -> float:
    """``cap bench deploy:rollback``, one process per host: back to the release before the newest."""
    expected = {}
    for t in targets:
        releases = capistrano_releases(t)
        if len(releases) < 2:
            raise RuntimeError(f"{t.address}:{t.folder}: nothing to roll back to ({releases})")
        expected[t] = releases[-2]
    elapsed = _cap(work, ssh, targets, "deploy:rollback", {}, check, parallelism)
    wrong = [
        f"{t.address}:{t.folder}: current={capistrano_current(t)}, expected {r}"
        for t, r in expected.items()
        if capistrano_current(t) != r
    ]
    if wrong:
        raise RuntimeError("capistrano rollback did not switch back:\n" + "\n".join(wrong))
    return elapsed


def capistrano_releases(target: Target) -> list[str]:
    """The target's Capistrano release names (timestamps), oldest first, read from its folder."""
    releases = Path(target.folder) / "releases"
    return sorted(p.name for p in releases.iterdir() if p.is_dir()) if releases.is_dir() else []


def capistrano_current(target: Target) -> str | None:
    """The release the target's ``current`` points to (Capistrano links it by absolute path)."""
    current = Path(target.folder) / "current"
    if not current.is_symlink():
        return None
    resolved = current.resolve()
    return resolved.name if resolved.parent == (Path(target.folder) / "releases").resolve() else None


def _cap(
    work: Path, ssh: Ssh, targets: list[Target], task: str, extra: dict[str, str], check: str, parallelism: int
) -> float:
    work.mkdir(parents=True, exist_ok=True)
    run = Path(tempfile.mkdtemp(prefix=f"cap-{task.replace(':', '-')}-", dir=work))

    def one(index: int, t: Target) -> None:
        env = {
            **_clean_env(),
            **extra,
            "BENCH_HOST": t.address,
            "BENCH_PORT": str(t.port),
            "BENCH_USER": ssh.user,
            "BENCH_DEPLOY_TO": t.folder,
            "BENCH_CHECK": check,
            "BENCH_KEY": str(ssh.key),
            "BENCH_KNOWN_HOSTS": str(ssh.known_hosts),
            "BENCH_CAP_LOG": str(run / f"t{index}.log"),
        }
        code, output = _run([CAP, "bench", task], env=env, cwd=CAPISTRANO_DIR, timeout=RUN_TIMEOUT)
        (run / f"t{index}.out").write_text(output)
        if code != 0:
            raise RuntimeError(f"cap {task} for {t.address}:{t.folder} exited {code}:\n{output}")

    return _parallel(targets, one, parallelism)


# ---------------------------------------------------------------- Floor


def floor_fabric_deploy(ssh: Ssh, targets: list[Target], tarball: Path, release: str, parallelism: int) -> float:
    """Fabric/paramiko: per host one connection, an SFTP put of the tarball, one command to unpack and switch."""
    data = tarball.read_bytes()
    incoming = f".incoming-{release}.tgz"

    def one(_index: int, t: Target) -> None:
        with _fabric(ssh, t) as c:
            sftp = c.sftp()
            _sftp_makedirs(sftp, t.folder)
            sftp.putfo(io.BytesIO(data), f"{t.folder}/{incoming}", file_size=len(data), confirm=False)
            _fabric_run(c, t, f"cd {shlex.quote(t.folder)} && {_unpack(release, incoming)} && {_switch(release)}")

    elapsed = _parallel(targets, one, parallelism)
    verify_current(targets, release)
    return elapsed


def floor_fabric_rollback(ssh: Ssh, targets: list[Target], previous: str, parallelism: int) -> float:
    """Fabric/paramiko: per host one connection and one command switching back (no check, like the deploy)."""

    def one(_index: int, t: Target) -> None:
        q = shlex.quote
        with _fabric(ssh, t) as c:
            _fabric_run(c, t, f"cd {q(t.folder)} && test -d releases/{q(previous)} && {_switch(previous)}")

    elapsed = _parallel(targets, one, parallelism)
    verify_current(targets, previous)
    return elapsed


def floor_openssh_deploy(ssh: Ssh, targets: list[Target], tarball: Path, release: str, parallelism: int) -> float:
    """OpenSSH client: per host ``ssh host 'mkdir && tar xzf - && ln && mv -T' < tarball``."""

    def one(_index: int, t: Target) -> None:
        remote = f"mkdir -p {shlex.quote(t.folder)} && cd {shlex.quote(t.folder)} && " + _unpack(release, "-")
        with tarball.open("rb") as stdin:
            _openssh(ssh, t, f"{remote} && {_switch(release)}", stdin)

    elapsed = _parallel(targets, one, parallelism)
    verify_current(targets, release)
    return elapsed


def floor_openssh_rollback(ssh: Ssh, targets: list[Target], previous: str, parallelism: int) -> float:
    """OpenSSH client: per host one ``ssh`` switching back (no check, like the deploy)."""

    def one(_index: int, t: Target) -> None:
        q = shlex.quote
        _openssh(ssh, t, f"cd {q(t.folder)} && test -d releases/{q(previous)} && {_switch(previous)}", None)

    elapsed = _parallel(targets, one, parallelism)
    verify_current(targets, previous)
    return elapsed


def _unpack(release: str, source: str) -> str:
    """Shell (run in the deploy folder) unpacking ``source`` (a file there, or ``-``) into releases/<release>."""
    q, folder = shlex.quote, shlex.quote(f"releases/{release}")
    cleanup = "" if source == "-" else f" && rm -f {q(source)}"
    return f"mkdir -p {folder} && tar -xzf {q(source)} --no-same-owner -C {folder}{cleanup}"


def _switch(release: str) -> str:
    return f"ln -sfn {shlex.quote(f'releases/{release}')} .current.next && mv -T .current.next current"


def _fabric(ssh: Ssh, t: Target) -> fabric.Connection:
    # An explicit empty SSHConfig: no ~/.ssh/config or /etc/ssh/ssh_config, like `ssh -F /dev/null`.
    config = fabric.Config(ssh_config=paramiko.SSHConfig())
    c = fabric.Connection(
        t.address,
        user=ssh.user,
        port=t.port,
        config=config,
        connect_timeout=CONNECT_TIMEOUT,
        connect_kwargs={"key_filename": [str(ssh.key)], "look_for_keys": False, "allow_agent": False},
    )
    # Fabric accepts unknown hosts by default: only the fleet's keys, and reject anything else.
    c.client.load_host_keys(str(ssh.known_hosts))
    c.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    return c


def _fabric_run(c: fabric.Connection, t: Target, command: str) -> None:
    result = c.run(command, hide=True, warn=True, in_stream=False, timeout=HOST_TIMEOUT)
    if result.exited != 0:
        raise RuntimeError(f"{t.address}:{t.folder}: exited {result.exited}:\n{result.stdout}{result.stderr}")


def _sftp_makedirs(sftp: paramiko.SFTPClient, folder: str) -> None:
    """``mkdir -p`` over SFTP: one stat when the folder exists (the usual case)."""
    missing = []
    path = folder
    while path not in ("", "/"):
        try:
            sftp.stat(path)
            break
        except FileNotFoundError:
            missing.append(path)
            path = os.path.dirname(path)
    for path in reversed(missing):
        sftp.mkdir(path)


def _openssh(ssh: Ssh, t: Target, command: str, stdin: IO[bytes] | None) -> None:
    argv = ["ssh", "-F", "/dev/null", *(a for o in _verified_options(ssh) for a in ("-o", o))]
    # The key exchange paramiko ends up with; OpenSSH 9.2's default (sntrup761 hybrid) costs client and
    # server about 0.1 s more CPU per connection here, which the floor should not pay.
    argv += ["-o", f"KexAlgorithms={FLOOR_KEX}"]
    argv += ["-p", str(t.port), "-l", ssh.user, t.address, command]
    code, output = _run(argv, timeout=HOST_TIMEOUT, stdin=stdin)
    if code != 0:
        raise RuntimeError(f"ssh {t.address}:{t.folder} exited {code}:\n{output}")


# ---------------------------------------------------------------- shared


def verify_current(targets: Sequence[Target], release: str) -> None:
    """Raise unless every target's ``current`` resolves to ``releases/<release>`` (read from the host folders)."""
    wrong = []
    for t in targets:
        folder = Path(t.folder)
        current, expected = folder / "current", folder / "releases" / release
        if not (current.is_symlink() and expected.is_dir() and current.resolve() == expected.resolve()):
            found = os.readlink(current) if current.is_symlink() else "no link"
            wrong.append(f"{t.address}:{t.folder}: current -> {found}, expected releases/{release}")
    if wrong:
        raise RuntimeError("current is not the expected release:\n" + "\n".join(wrong))


def _verified_options(ssh: Ssh) -> list[str]:
    """OpenSSH options: the fleet's known_hosts only, strict, never a prompt, only the given key."""
    return [
        f"UserKnownHostsFile={ssh.known_hosts}",
        "GlobalKnownHostsFile=/dev/null",
        "StrictHostKeyChecking=yes",
        "BatchMode=yes",
        f"IdentityFile={ssh.key}",
        "IdentitiesOnly=yes",
        f"ConnectTimeout={CONNECT_TIMEOUT}",
    ]


def _clean_env() -> dict[str, str]:
    """The caller's environment without ANSIBLE_* settings or an agent that could change what a tool does."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "SSH_AUTH_SOCK", "BENCH_"))}


def _run(
    argv: list[str],
    *,
    timeout: float,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    stdin: IO[bytes] | None = None,
) -> tuple[int, str]:
    """Run to completion with output captured; on timeout kill its whole session and raise."""
    process = subprocess.Popen(
        argv,
        env=env,
        cwd=cwd,
        stdin=stdin if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # forks and ssh children die with it on timeout
    )
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, _ = process.communicate(timeout=30)
        raise RuntimeError(f"{argv[0]} timed out after {timeout:.0f} s:\n{out.decode(errors='replace')}") from None
    return process.returncode, out.decode(errors="replace")


def _parallel(targets: Sequence[Target], one: Callable[[int, Target], None], parallelism: int) -> float:
    """Run ``one`` for every target, ``parallelism`` at a time; the wall time, or every failure raised together."""
    errors: list[str] = []
    lock = threading.Lock()

    def guarded(index: int, t: Target) -> None:
        try:
            one(index, t)
        except Exception as e:  # noqa: BLE001 (collected and raised below with every host's reason)
            with lock:
                errors.append(f"{t.address}:{t.folder}: {type(e).__name__}: {e}")

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        list(pool.map(guarded, range(len(targets)), targets))
    elapsed = time.monotonic() - start
    if errors:
        raise RuntimeError(f"{len(errors)} of {len(targets)} targets failed:\n" + "\n".join(sorted(errors)))
    return elapsed


def _pids_with(marker: str) -> list[int]:
    """Processes whose command line (ssh masters retitle theirs to the socket path) contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if marker in cmdline and state != "Z":
                found.append(int(entry.name))
    return found
