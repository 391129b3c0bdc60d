"""Writing rendered bundles to a folder: atomically, and not at all when unchanged."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath

from .bundle import Bundle
from .errors import Problem, RenderError

MANIFEST_NAME = "manifest.json"
FILES_DIR = "files"


def write_bundle(bundle: Bundle, out: Path) -> bool:
    """Write ``out/<plant>/<layer>/``; return False when an identical bundle is already there."""
    final = out / bundle.plant / bundle.layer
    manifest = bundle.manifest_bytes()
    if _unchanged(final, bundle, manifest):
        return False
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{bundle.layer}.", dir=final.parent))
    try:
        for f in bundle.files:
            target = _inside(staging / FILES_DIR, f.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(f.content)
            target.chmod(f.mode)
        (staging / MANIFEST_NAME).write_bytes(manifest)
        staging.chmod(0o755)
        _swap(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return True


def _inside(root: Path, rel: str) -> Path:
    """Bundle paths come from git and overlays; refuse any that would leave the folder anyway."""
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise RenderError([Problem(rel, message="bundle path leaves its folder", expected="a relative path")])
    return root.joinpath(*pure.parts)


def _unchanged(final: Path, bundle: Bundle, manifest: bytes) -> bool:
    try:
        if (final / MANIFEST_NAME).read_bytes() != manifest:
            return False
        return all((final / FILES_DIR / f.path).stat().st_size == len(f.content) for f in bundle.files)
    except OSError:
        return False


def _swap(staging: Path, final: Path) -> None:
    """Replace ``final`` by ``staging`` so a reader sees the old bundle or the new, never a mix."""
    if not final.exists():
        os.replace(staging, final)
        return
    old = final.with_name(final.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(final, old)
    os.replace(staging, final)
    shutil.rmtree(old, ignore_errors=True)
