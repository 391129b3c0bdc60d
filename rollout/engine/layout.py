"""The layout of a layer on a host, and the few shell scripts that change it.

    <target>/releases/<release-dir>/        one folder per staged release, never changed once in place
    <target>/releases/<release-dir>/.rollout-manifest.json
    <target>/current -> releases/<release-dir>   switched atomically (new link beside, then rename)
    <target>/.rollout/record.json           what runs: release, bundle hash, when, by whom, previous
    <target>/.rollout/history.jsonl         every activation and removal, appended
    <target>/.rollout/attention.json        present while the layer needs a person
    <target>/.rollout/unsettled             the release folder switched to, until its restart step succeeds (then empty)

Everything is plain POSIX shell and coreutils, so any host that can run a shell takes part,
and the local and SSH transports run exactly the same scripts. Nothing here runs them: each
function returns its script as a ``HostStep`` (pyinfra's operations yield commands), and the
executor runs it through the host's transport (``Connections.run``).
"""

from __future__ import annotations

import hashlib
import io
import shlex
import tarfile
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from rollout.core.assets import Probe
from rollout.core.bundle import Bundle, canonical_json
from rollout.core.drift import Drift
from rollout.core.steps import release_dir

__all__ = [
    "HostStep",
    "Room",
    "Running",
    "activate",
    "archive",
    "deactivate",
    "layer_dir",
    "link_only",
    "locked",
    "parse_link",
    "release_dir",
    "remove_releases",
    "restart_done",
    "set_attention",
    "stage",
    "staged_check",
    "to_prune",
    "write_record",
]

MANIFEST_NAME = ".rollout-manifest.json"
UNSETTLED = ".rollout/unsettled"


@dataclass(frozen=True)
class HostStep:
    """One shell script for one host, with its stdin: what the executor runs through the transport."""

    script: str
    timeout: float
    what: str
    """What it does, for the message when it fails ("switching the current link")."""
    stdin: bytes = b""


@dataclass(frozen=True)
class Running:
    """What a host's layer runs according to the host itself."""

    release_dir: str | None
    """Where ``current`` points (None: nothing installed)."""
    release: str | None
    commit: str | None
    bundle_hash: str | None
    record: dict[str, Any]
    attention: str | None
    staged: tuple[str, ...]
    """Release folders present, newest first."""
    staged_manifests: dict[str, str] = field(default_factory=dict)
    """Release folder -> sha256 of its manifest: what staging may skip."""
    room: Room | None = None
    """The preflight probe's answer, when it was asked for."""
    assets: Probe | None = None
    """What the host is and runs (OS, kernel, packages), when it was asked for."""
    restart_owed: bool = False
    """A run switched the host to what it runs and stopped before its restart step ran: the
    old release may still be serving behind the new link."""
    drift: Drift | None = None
    """How the files of the release it runs differ from their manifest, when it was asked for
    (``read_running``'s ``verify_unless``); None: not asked, or it runs nothing."""

    @property
    def whole(self) -> bool:
        """The link, the staged manifest and the record agree."""
        if self.release_dir is None:
            return self.record.get("release") is None
        return self.record.get("release_dir") == self.release_dir and self.bundle_hash == self.record.get("bundle_hash")


def layer_dir(root: str, target: str) -> str:
    """The layer's folder on the host: its target below the host's root ('/' on real hosts)."""
    return (PurePosixPath(root) / PurePosixPath(target).relative_to("/")).as_posix()


def archive(bundle: Bundle) -> bytes:
    """One tarball per host and layer: sorted, no timestamps or owners, manifest included."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        entries = [(f.path, f.content, f.mode) for f in bundle.files]
        entries.append((MANIFEST_NAME, bundle.manifest_bytes(), 0o644))
        for path, content, mode in sorted(entries):
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(content), mode, 0
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _q(value: str) -> str:
    return shlex.quote(value)


LOCK_BUSY = 75
"""Exit code of a command that could not get the layer's lock in time."""


def locked(directory: str, script: str, timeout: float) -> str:
    """``script`` holding the layer's lock on the host, so that a step left running by a
    killed rollout (hosts go on with what they were told) ends before the next one starts.

    The shell itself holds the lock on its descriptor 9 (no second shell for the script); a
    command that may start a service runs with that descriptor closed (``UNLOCKED``), so
    that no service ever holds the lock."""
    wait = max(1, int(timeout * 0.8))  # ends first, so the message says why
    rollout = f"{_q(directory)}/.rollout"
    busy = f"another rollout step held this layer's lock for {wait}s"
    return f"""[ -d {rollout} ] || mkdir -p {rollout} || exit 1
exec 9>>{rollout}/lock || exit 1
flock -E {LOCK_BUSY} -w {wait} 9 || {{ rc=$?; [ $rc -ne {LOCK_BUSY} ] || echo {_q(busy)} >&2; exit $rc; }}
{script}
"""


UNLOCKED = "9>&-"
"""The redirection that runs a command of ``locked``'s script without the lock's descriptor."""


@dataclass(frozen=True)
class Room:
    writable: bool
    why: str
    free_kib: int


def stage(
    directory: str, bundle: Bundle, timeout: float, running: Running | None, payload: bytes | None = None
) -> HostStep | None:
    """Put the bundle in ``releases/<dir>/`` unless that exact manifest is already there
    (as ``running``, read from the host at the plant's start, says).

    One round trip: the tarball travels on the command's stdin, is unpacked beside its
    final name and renamed into place, so a half-transferred release never looks staged.
    ``payload`` is ``archive(bundle)`` when the caller made it once for several hosts.
    None: nothing to transfer.
    """
    name = release_dir(bundle)
    digest = hashlib.sha256(bundle.manifest_bytes()).hexdigest()
    if running is not None and running.staged_manifests.get(name) == digest:
        return None
    partial, old = _q(f".{name}.partial"), _q(f".{name}.old")
    # Every process a host starts costs it a fork and an exec: shell tests spare the needless ones.
    script = f"""
set -eu
cd {_q(directory)}
[ -d releases ] || mkdir releases
cd releases
[ ! -e {partial} ] && [ ! -e {old} ] || rm -rf {partial} {old}
mkdir {partial}
tar -xf - --no-same-owner -C {partial}
if [ -e {_q(name)} ]; then mv {_q(name)} {old}; fi
mv {partial} {_q(name)}
[ ! -e {old} ] || rm -rf {old}
"""
    return HostStep(locked(directory, script, timeout), timeout, "unpacking the bundle", payload or archive(bundle))


def staged_check(directory: str, name: str, timeout: float) -> HostStep:
    """Succeeds when the release folder ``name`` is still staged on the host (a rollback needs it)."""
    return HostStep(f"test -f {_q(directory)}/releases/{_q(name)}/{MANIFEST_NAME}", timeout, "finding the release")


def activate(
    directory: str, name: str, record: dict[str, Any], timeout: float, restart: bool, remove: tuple[str, ...] = ()
) -> HostStep:
    """Point ``current`` at ``releases/<name>`` with one rename, write the record, then remove
    the old release folders ``remove`` names (``to_prune``; a deploy prunes as it switches).

    With ``restart`` (the layer has a restart step) the host first notes that it owes one, so
    that a run stopped after the switch leaves the host saying so (``restart_done`` clears it)."""
    script = f"""
set -eu
cd {_q(directory)}
test -f releases/{_q(name)}/{MANIFEST_NAME}
{_owed_script(name if restart else None)}
ln -sfn releases/{_q(name)} .current.next
mv -T .current.next current
{_record_script(record)}
{_remove_script(name, remove)}
"""
    return HostStep(locked(directory, script, timeout), timeout, "switching the current link")


def link_only(directory: str, timeout: float) -> HostStep:
    """Where ``current`` points, as the host says (after a playbook did the switch); read by ``parse_link``."""
    return HostStep(f"readlink {_q(directory)}/current 2>/dev/null || true", timeout, "readlink")


def parse_link(stdout: str) -> str | None:
    return PurePosixPath(stdout.strip()).name if stdout.strip() else None


def write_record(
    directory: str, name: str, record: dict[str, Any], timeout: float, restart: bool, remove: tuple[str, ...] = ()
) -> HostStep:
    """Write the host's record after a playbook switched it to release folder ``name``: the
    restart note and the removal of ``remove`` as ``activate`` has them."""
    owed = _owed_script(name if restart else None)
    parts = ["set -eu", f"cd {_q(directory)}", owed, _record_script(record), _remove_script(name, remove)]
    script = "\n".join(parts)
    return HostStep(locked(directory, script, timeout), timeout, "writing the record")


def deactivate(directory: str, record: dict[str, Any], timeout: float) -> HostStep:
    """Remove ``current``: the layer runs nothing (a first install undone)."""
    script = f"""
set -eu
cd {_q(directory)} 2>/dev/null || exit 0
rm -f current
{_owed_script(None)}
{_record_script(record)}
"""
    return HostStep(locked(directory, script, timeout), timeout, "removing the current link")


def _owed_script(name: str | None) -> str:
    """Note that the host owes the restart of release folder ``name`` (None: it owes none).

    Written before the switch, so a note cut short can only be beside the old link, whose
    release was settled; not renamed into place, as a shell builtin writes it."""
    if name is None:
        return f"[ ! -s {UNSETTLED} ] || : > {UNSETTLED}"
    return f"printf '%s\\n' {_q(name)} > {UNSETTLED}"


def restart_done(directory: str) -> str:
    """Shell that clears what ``activate`` noted (empties it), run right after the restart step succeeded."""
    owed = f"{_q(directory)}/{UNSETTLED}"
    return f"{{ [ ! -s {owed} ] || : > {owed}; }}"


def _remove_script(current: str, remove: tuple[str, ...]) -> str:
    """Remove the old release folders ``remove``; a failure to prune does not fail the switch."""
    if current in remove:
        raise ValueError(f"refusing to prune {current}, the release being switched to")
    if not remove:
        return ""
    return "rm -rf -- " + " ".join(_q(f"releases/{name}") for name in remove) + " || true"


def to_prune(staged: tuple[str, ...], keep: int, protect: set[str]) -> tuple[str, ...]:
    """The release folders to remove of ``staged`` (newest first): all but the ``keep`` newest
    of those not in ``protect``."""
    return tuple([name for name in staged if name not in protect][keep:])


def _record_script(record: dict[str, Any]) -> str:
    line = canonical_json(record).decode()
    # A host brought to a whole release by rollout no longer needs a person.
    return f"""printf '%s\\n' {_q(line)} > .rollout/record.json.next
mv .rollout/record.json.next .rollout/record.json
printf '%s\\n' {_q(line)} >> .rollout/history.jsonl
[ ! -e .rollout/attention.json ] || rm -f .rollout/attention.json"""


def set_attention(directory: str, reason: str | None, timeout: float) -> HostStep:
    """Mark (or, with None, clear) the layer as needing a person."""
    if reason is None:
        mark = f"{_q(directory)}/.rollout/attention.json"
        script = f"[ ! -e {mark} ] || rm -f {mark}"
    else:
        body = canonical_json({"reason": reason}).decode()
        script = f"printf '%s\\n' {_q(body)} > {_q(directory)}/.rollout/attention.json"
    return HostStep(locked(directory, script, timeout), timeout, "writing the attention mark")


def remove_releases(directory: str, current: str | None, names: tuple[str, ...], timeout: float) -> HostStep:
    """Remove the old release folders ``names`` of a host that runs ``current`` (``to_prune``
    chose them; a host a deploy switched removes them in its switch instead)."""
    script = f"cd {_q(directory)}\n{_remove_script(current or '', names)}"
    return HostStep(locked(directory, script, timeout), timeout, "pruning old releases")
