"""Reading a layer's state off a host: one round trip for the link, the record, the notes, the
staged folders and their manifests' digests, and on request the preflight's probe, what the
host is and runs, and the hashes of the release it leaves (``read_running``); what that
printed, as a ``Running`` (``parse_running``).

Plain POSIX shell and coreutils like the rest of ``rollout.engine.layout``; a host's every
process costs it a fork and an exec, so one ``grep -H`` reads all the small files at once.
"""

from __future__ import annotations

import json
import shlex
from pathlib import PurePosixPath
from typing import Any

from rollout.core.assets import parse_probe
from rollout.core.drift import compare, parse_sums
from rollout.engine.layout import MANIFEST_NAME, UNSETTLED, HostStep, Room, Running
from rollout.engine.verify import SUMS

__all__ = ["ASSET_SCRIPT", "PROBE_SCRIPT", "parse_running", "read_running"]

_MARK = "\x1erollout:"  # record separator: cannot occur in JSON or in our file names


def read_running(
    directory: str,
    timeout: float,
    probe: bool = False,
    assets: bool = False,
    known: str = "",
    verify_unless: str | None = None,
) -> HostStep:
    """One round trip: the link, the record, the manifest in use, attention, staged folders,
    with ``probe`` the preflight's answer (see ``PROBE_SCRIPT``) and with ``assets`` what the
    host is and runs (``ASSET_SCRIPT``; ``known``: the package database's stamp in the host's
    last record, so the package list is left out if it is still the same); with
    ``verify_unless`` the hash of every file of the release it runs, unless that is the
    release folder named (a deploy's target: the host leaves any other, and a rollback to it
    must know whether it is still clean); read by ``parse_running``."""
    script = (
        (ASSET_SCRIPT.replace("{mark}", _MARK).replace("{known}", shlex.quote(known)) if assets else "")
        + (PROBE_SCRIPT.format(directory=shlex.quote(directory), mark=_MARK) if probe else "")
        + f"""
cd {shlex.quote(directory)} 2>/dev/null || exit 0
link=$(readlink current 2>/dev/null || true)
printf '{_MARK}current\\n%s\\n' "$link"
printf '{_MARK}files\\n'; grep -a -H -s '' {" ".join(_FILES.values())} || true
printf '{_MARK}staged\\n'; ls -1t releases 2>/dev/null || true
printf '{_MARK}digests\\n'; sha256sum releases/*/{MANIFEST_NAME} 2>/dev/null || true
"""
        + (_VERIFY_SCRIPT.format(mark=_MARK, unless=shlex.quote(verify_unless)) if verify_unless is not None else "")
    )
    return HostStep(script, timeout, "reading the layer's state")


_VERIFY_SCRIPT = f"""
if [ -n "$link" ] && [ "${{{{link##*/}}}}" != {{unless}} ]; then
    printf '{{mark}}sums\\n'
    (cd current 2>/dev/null && {SUMS}) || true
fi
"""
"""The sums ``rollout.core.drift`` compares with the manifest of the release a host runs (see ``verify_unless``)."""


_FILES = {
    "record": ".rollout/record.json",
    "manifest": f"current/{MANIFEST_NAME}",
    "attention": ".rollout/attention.json",
    "unsettled": UNSETTLED,
}
"""Section -> the file of the layer's folder it holds: one ``grep -H`` prints them all."""


def parse_running(stdout: str, probe: bool = False) -> Running:
    """What ``read_running``'s script printed."""
    parts = _sections(stdout)
    files = _files(parts.get("files", ""))
    link = parts.get("current", "").strip()
    current = PurePosixPath(link).name if link else None
    manifest = _json(files.get("manifest", ""))
    attention = _json(files.get("attention", ""))
    release = manifest.get("release", {}) if current else {}
    return Running(
        release_dir=current,
        release=release.get("id"),
        commit=release.get("commit"),
        bundle_hash=manifest.get("bundle_hash") if current else None,
        record=_json(files.get("record", "")),
        attention=str(attention.get("reason")) if attention else None,
        staged=tuple(line for line in parts.get("staged", "").splitlines() if line and not line.startswith(".")),
        staged_manifests=_digests(parts.get("digests", "")),
        room=_room(parts.get("probe", "")) if probe else None,
        assets=parse_probe(_uname(parts)) if "os" in parts else None,
        restart_owed=current is not None and files.get("unsettled", "").strip() == current,
        drift=compare(manifest, parse_sums(parts["sums"])) if current and "sums" in parts else None,
    )


def _files(text: str) -> dict[str, str]:
    """``grep -H`` lines (``<path>:<line>``) of the ``_FILES`` -> {section: the file's text}."""
    by_path = {f"{path}:": name for name, path in _FILES.items()}
    lines: dict[str, list[str]] = {}
    for line in text.splitlines():
        path, colon, rest = line.partition(":")
        name = by_path.get(path + colon)
        if name is not None:
            lines.setdefault(name, []).append(rest)
    return {name: "\n".join(found) for name, found in lines.items()}


def _uname(parts: dict[str, str]) -> dict[str, str]:
    """The sections with ``uname -rm``'s answer as the kernel and arch sections ``parse_probe`` reads."""
    kernel, _, arch = parts.get("uname", "").strip().rpartition(" ")
    return {**parts, "kernel": kernel, "arch": arch}


def _digests(text: str) -> dict[str, str]:
    """``sha256sum`` lines of ``releases/<name>/<manifest>`` -> {name: digest}."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        digest, _, path = line.partition("  ")
        parts = path.split("/")
        if len(digest) == 64 and len(parts) == 3:
            found[parts[1]] = digest
    return found


def _sections(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for chunk in text.split(_MARK)[1:]:
        name, _, body = chunk.partition("\n")
        out[name] = body
    return out


def _json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text) if text.strip() else {}
    except ValueError:
        return {"unreadable": text[:200]}
    return value if isinstance(value, dict) else {}


ASSET_SCRIPT = r"""
printf '{mark}os\n'; cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null || true
printf '{mark}uname\n'; uname -rm
known={known}
if command -v dpkg-query >/dev/null 2>&1; then
    stamp=$(stat -L -c '%y %s %i' "${DPKG_ADMINDIR:-/var/lib/dpkg}/status" 2>/dev/null)
    printf '{mark}stamp\n%s\n' "$stamp"
    if [ -n "$stamp" ] && [ "$stamp" = "$known" ]; then printf '{mark}unchanged\ndpkg\n'
    else
        printf '{mark}dpkg\n'
        dpkg-query -W -f '${db:Status-Abbrev}\t${Package}\t${Version}\n' 2>/dev/null || true
    fi
elif command -v rpm >/dev/null 2>&1; then
    stamp=''
    for db in /var/lib/rpm /usr/lib/sysimage/rpm; do
        if [ -d "$db" ]; then stamp=$(stat -L -c '%n %y %s %i' "$db"/* 2>/dev/null | cksum); break; fi
    done
    printf '{mark}stamp\n%s\n' "$stamp"
    if [ -n "$stamp" ] && [ "$stamp" = "$known" ]; then printf '{mark}unchanged\nrpm\n'
    else
        printf '{mark}rpm\n'
        rpm -qa --qf '%{NAME}\t%{VERSION}-%{RELEASE}\n' 2>/dev/null || true
    fi
fi
"""
"""What the host is and runs, read by ``rollout.core.assets.parse_probe``: printed before the
layer's own sections, so a host without the layer's folder still answers. The stamp is taken
before the list is read, so a database that changes while it is read differs next time. dpkg
replaces its status file by a rename on every change, so the inode changes with it; the rpm
database's stamp covers every file of its folder (journals included). ``DPKG_ADMINDIR`` is
dpkg's own setting for where its database lives."""


PROBE_SCRIPT = """
d={directory}
while [ ! -e "$d" ]; do d=$(dirname "$d"); done
printf '{mark}probe\\n'
if [ ! -d "$d" ]; then echo "blocked: $d is not a folder"
elif ! ( : > "$d/.rollout-probe-$$" ) 2>/dev/null; then echo "not writable: $d"
else rm -f "$d/.rollout-probe-$$"; df -Pk "$d"
fi
"""
"""Preflight: can the layer's folder be written, and how much room is there (KiB)? Creates
nothing that stays: it writes and removes one probe file in the nearest existing folder."""


def _room(text: str) -> Room:
    """``df -Pk``'s answer (a header, then the folder's file system: available KiB in the 4th column), or why not."""
    lines = text.strip().splitlines()
    fields = lines[-1].split() if len(lines) == 2 else []  # the header's words depend on the locale
    if len(fields) >= 4 and fields[3].isdigit():
        return Room(True, "", int(fields[3]))
    return Room(False, text.strip() or "probe gave no answer", 0)
