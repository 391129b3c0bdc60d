"""The script that hashes a release folder on a host, and what its output says (``rollout.core.drift``).

One round trip per host and layer; plain POSIX shell and coreutils like the rest of
``rollout.engine.layout``, so the local and SSH transports run the same script. It only reads.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import PurePosixPath

from rollout.core.drift import MANIFEST_NAME, Drift, compare, parse_manifest, parse_sums
from rollout.engine.layout import HostStep

_MARK = "\x1erollout-verify:"
SUMS = "find . ! -type d -print0 | xargs -0 -r sha256sum 2>/dev/null"
"""Every file below the working folder hashed (``./<path>`` lines, ``parse_sums`` reads them in any order)."""


@dataclass(frozen=True)
class Verified:
    """One release folder of one host's layer, checked against its manifest."""

    release_dir: str | None
    """The folder checked (None: the layer runs nothing, so nothing can drift)."""
    release: str | None
    bundle_hash: str | None
    drift: Drift


def verify(directory: str, folder: str | None, timeout: float) -> HostStep:
    """Hash every file of ``releases/<folder>`` (None: of the folder ``current`` points at)."""
    where = "current" if folder is None else f"releases/{shlex.quote(folder)}"
    script = f"""
cd {shlex.quote(directory)} 2>/dev/null || exit 0
if [ ! -e {where} ] && [ ! -L {where} ]; then exit 0; fi
printf '{_MARK}link\\n'; readlink {where} 2>/dev/null || printf '%s\\n' {where}
cd {where} 2>/dev/null || {{ printf '{_MARK}gone\\n'; exit 0; }}
printf '{_MARK}manifest\\n'; cat {MANIFEST_NAME} 2>/dev/null || true
printf '{_MARK}sums\\n'; {SUMS} || true
"""
    return HostStep(script, timeout, "hashing the release's files")


def parse_verify(stdout: str) -> Verified:
    """What ``verify``'s script printed."""
    parts: dict[str, str] = {}
    for chunk in stdout.split(_MARK)[1:]:
        name, _, body = chunk.partition("\n")
        parts[name] = body
    link = parts.get("link", "").strip()
    folder = PurePosixPath(link).name if link else None
    if "gone" in parts:
        return Verified(folder, None, None, Drift(unreadable=f"the release folder {folder} is gone"))
    if "manifest" not in parts:
        return Verified(None, None, None, Drift())
    manifest = parse_manifest(parts["manifest"])
    release = manifest.get("release")
    return Verified(
        folder,
        str(release.get("id")) if isinstance(release, dict) else None,
        str(manifest["bundle_hash"]) if manifest.get("bundle_hash") else None,
        compare(manifest, parse_sums(parts.get("sums", ""))),
    )
