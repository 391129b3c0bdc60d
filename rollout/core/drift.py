"""Drift: how a release folder on a host differs from the manifest it was staged with. Pure.

A host's script (``rollout.engine.verify``) prints the folder's manifest and the sha256 of
every file in it; ``compare`` turns that into files modified, missing and added.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MANIFEST_NAME = ".rollout-manifest.json"


@dataclass(frozen=True)
class Drift:
    """The files of one release folder that differ from its manifest, each list sorted."""

    modified: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    unreadable: str = ""
    """Why the manifest could not be read ("" when it could): nothing in the folder can be trusted."""

    @property
    def drifted(self) -> bool:
        return bool(self.modified or self.missing or self.added or self.unreadable)

    def summary(self, limit: int = 5) -> str:
        """In words, naming at most ``limit`` files of each kind ("" when nothing drifted)."""
        if self.unreadable:
            return self.unreadable
        parts = []
        for word, files in (("modified", self.modified), ("missing", self.missing), ("added", self.added)):
            if files:
                more = f" and {len(files) - limit} more" if len(files) > limit else ""
                parts.append(f"{word} {', '.join(files[:limit])}{more}")
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "drifted": self.drifted,
            "modified": list(self.modified),
            "missing": list(self.missing),
            "added": list(self.added),
        }
        if self.unreadable:
            found["unreadable"] = self.unreadable
        return found

    @staticmethod
    def from_dict(detail: dict[str, Any]) -> Drift:
        def files(key: str) -> tuple[str, ...]:
            return tuple(str(f) for f in detail.get(key) or ())

        return Drift(files("modified"), files("missing"), files("added"), str(detail.get("unreadable") or ""))


def compare(manifest: dict[str, Any], sums: dict[str, str]) -> Drift:
    """The manifest's files against ``sums`` (path -> sha256 of every file found in the folder)."""
    listed = manifest.get("files")
    if not isinstance(listed, list):
        return Drift(unreadable="the release folder has no readable manifest")
    expected = {str(f.get("path")): str(f.get("sha256")) for f in listed if isinstance(f, dict)}
    found = {path: digest for path, digest in sums.items() if path != MANIFEST_NAME}
    modified = sorted(p for p, digest in expected.items() if p in found and found[p] != digest)
    missing = sorted(p for p in expected if p not in found)
    added = sorted(p for p in found if p not in expected)
    return Drift(tuple(modified), tuple(missing), tuple(added))


def parse_sums(text: str) -> dict[str, str]:
    """``sha256sum`` lines of ``./<path>`` -> {path: digest}; a line it escaped (a name with a
    newline or backslash) keeps its escaped name, which matches no manifest entry: drift."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        escaped = line.startswith("\\")
        digest, _, path = line.lstrip("\\").partition("  ")
        if len(digest) != 64:
            continue
        path = path.removeprefix("./")
        found["\\" + path if escaped else path] = digest
    return found


def parse_manifest(text: str) -> dict[str, Any]:
    """The manifest's JSON; {} when absent or unreadable (``compare`` then says so)."""
    try:
        value = json.loads(text) if text.strip() else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
