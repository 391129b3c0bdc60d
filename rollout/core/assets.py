"""What a host is and runs, to the patch level: the asset probe's output read into records,
Debian version ordering for "older than", and staleness. Pure: no I/O.

The probe (``rollout.engine.hoststate.ASSET_SCRIPT``) prints sections, each opened by a
marker line: ``os`` (the os-release file), ``kernel`` (``uname -r``), ``arch``
(``uname -m``), then ``dpkg`` or ``rpm`` with one ``name<TAB>version`` line per package
(dpkg's lines lead with the package's status, only installed ones are kept).

The package list is the probe's whole cost (``dpkg-query`` is nearly all of its time), so it
is sent only when the package database changed: a ``stamp`` section gives the database's
stamp (its status file's mtime, size and inode, or the rpm database's), and when it equals the
stamp the host's last record was taken at (sent with the script), an ``unchanged`` section
naming the packager stands in place of the list; ``carried`` then takes the packages from
that record.
"""

from __future__ import annotations

import datetime as dt
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "HostAssets",
    "Probe",
    "carried",
    "compare_versions",
    "from_json",
    "older_than",
    "parse_probe",
    "stale",
    "to_json",
]


@dataclass(frozen=True)
class Probe:
    """What one host said of itself."""

    os_name: str = ""
    os_version: str = ""
    kernel: str = ""
    arch: str = ""
    packager: str = ""
    """``dpkg``, ``rpm`` or '' (neither found)."""
    packages: Mapping[str, str] = field(default_factory=dict)
    stamp: str = ""
    """The package database's stamp when the packages were read ('' when none could be taken)."""
    unchanged: bool = False
    """The host sent no packages: its database's stamp equals the one it was asked about, so
    ``packages`` is empty here and the previous record's list holds (``carried``)."""


@dataclass(frozen=True)
class HostAssets:
    """One host's record in the state: what it is, what it runs, and when that was collected."""

    plant: str
    host: str
    probe: Probe
    releases: Mapping[str, str | None]
    """Layer -> the solution's release it runs there (None: nothing installed)."""
    collected: float
    """Seconds since the epoch."""


def parse_probe(sections: Mapping[str, str]) -> Probe:
    """The probe's sections (name -> body) as a ``Probe``."""
    release = _os_release(sections.get("os", ""))
    unchanged = sections.get("unchanged", "").strip()
    packager = "dpkg" if "dpkg" in sections else "rpm" if "rpm" in sections else unchanged
    lines = sections.get(packager, "").splitlines() if packager in ("dpkg", "rpm") else []
    return Probe(
        os_name=release.get("NAME", ""),
        os_version=release.get("VERSION_ID", release.get("VERSION", "")),
        kernel=sections.get("kernel", "").strip(),
        arch=sections.get("arch", "").strip(),
        packager=packager,
        packages=_dpkg(lines) if packager == "dpkg" else _tabbed(lines),
        stamp=sections.get("stamp", "").strip(),
        unchanged=bool(unchanged) and packager == unchanged,
    )


def carried(record: HostAssets, previous: HostAssets | None) -> HostAssets | None:
    """``record`` whole: one whose host sent no packages takes them from ``previous``, the record
    the host's stamp was compared with; None when ``previous`` is not of that same database
    (gone, or replaced meanwhile by a record of another stamp), since its list would not be
    this host's. A record with its packages is returned as it is."""
    probe = record.probe
    if not probe.unchanged:
        return record
    if previous is None or not probe.stamp or previous.probe.stamp != probe.stamp:
        return None
    if previous.probe.packager != probe.packager or previous.probe.unchanged:
        return None
    whole = Probe(
        probe.os_name, probe.os_version, probe.kernel, probe.arch, probe.packager, previous.probe.packages, probe.stamp
    )
    return HostAssets(record.plant, record.host, whole, record.releases, record.collected)


def _os_release(text: str) -> dict[str, str]:
    """KEY=value lines, values shell-quoted or not (os-release(5))."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if not sep or not key.isidentifier():
            continue
        try:
            words = shlex.split(value)
        except ValueError:
            words = [value]
        found[key] = " ".join(words)
    return found


def _dpkg(lines: Iterable[str]) -> dict[str, str]:
    """``status<TAB>name<TAB>version``: only what is installed ('ii', or 'hi' when held)."""
    found: dict[str, str] = {}
    for line in lines:
        parts = line.split("\t")
        if len(parts) == 3 and parts[0][1:2] == "i" and parts[1] and parts[2]:
            found[parts[1]] = parts[2]
    return found


def _tabbed(lines: Iterable[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in lines:
        name, sep, version = line.partition("\t")
        if sep and name and version:
            found[name] = version
    return found


# -- Debian version ordering (deb-version(7)) ----------------------------------------------


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as ``a`` is older than, the same as or newer than ``b``, in Debian's order:
    epoch first, then the upstream version, then the revision, each compared part by part,
    non-digits by the order in which '~' sorts before everything, even the end of the string."""
    epoch_a, rest_a = _epoch(a)
    epoch_b, rest_b = _epoch(b)
    if epoch_a != epoch_b:
        return -1 if epoch_a < epoch_b else 1
    upstream_a, _, revision_a = rest_a.rpartition("-") if "-" in rest_a else (rest_a, "", "")
    upstream_b, _, revision_b = rest_b.rpartition("-") if "-" in rest_b else (rest_b, "", "")
    return _compare_part(upstream_a, upstream_b) or _compare_part(revision_a, revision_b)


def _epoch(version: str) -> tuple[int, str]:
    head, sep, rest = version.strip().partition(":")
    if sep and head.isdigit():
        return int(head), rest
    return 0, version.strip()


def _order(text: str, at: int) -> int:
    """dpkg's ``order``: digits and the end weigh 0, '~' less, letters their code, the rest more."""
    if at >= len(text) or text[at].isdigit():
        return 0
    char = text[at]
    if char == "~":
        return -1
    return ord(char) if char.isalpha() else ord(char) + 256


def _compare_part(a: str, b: str) -> int:
    """dpkg's ``verrevcmp``: alternate runs of non-digits (by ``_order``) and digits (as numbers)."""
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ca, cb = _order(a, i), _order(b, j)
            if ca != cb:
                return -1 if ca < cb else 1
            i, j = i + 1, j + 1
        start_i, start_j = i, j
        while i < len(a) and a[i].isdigit():
            i += 1
        while j < len(b) and b[j].isdigit():
            j += 1
        na, nb = int(a[start_i:i] or 0), int(b[start_j:j] or 0)
        if na != nb:
            return -1 if na < nb else 1
    return 0


def older_than(version: str, than: str) -> bool:
    return compare_versions(version, than) < 0


def stale(record: HostAssets, now: dt.datetime, max_age: dt.timedelta) -> bool:
    """Collected longer ago than ``max_age``: what it says may no longer hold."""
    return now.timestamp() - record.collected > max_age.total_seconds()


# -- as the state keeps it -----------------------------------------------------------------


def to_json(record: HostAssets) -> dict[str, Any]:
    """The record as JSON (packages as one compact {name: version} object)."""
    p = record.probe
    return {
        "plant": record.plant,
        "host": record.host,
        "os": {"name": p.os_name, "version": p.os_version},
        "kernel": p.kernel,
        "arch": p.arch,
        "packager": p.packager,
        "packages": dict(sorted(p.packages.items())),
        "stamp": p.stamp,
        "releases": dict(sorted(record.releases.items())),
        "collected": record.collected,
    }


def from_json(data: Mapping[str, Any]) -> HostAssets:
    os_ = data.get("os") or {}
    probe = Probe(
        os_name=str(os_.get("name", "")),
        os_version=str(os_.get("version", "")),
        kernel=str(data.get("kernel", "")),
        arch=str(data.get("arch", "")),
        packager=str(data.get("packager", "")),
        packages={str(k): str(v) for k, v in (data.get("packages") or {}).items()},
        stamp=str(data.get("stamp", "")),
    )
    releases = {str(k): (None if v is None else str(v)) for k, v in (data.get("releases") or {}).items()}
    return HostAssets(str(data["plant"]), str(data["host"]), probe, releases, float(data["collected"]))
