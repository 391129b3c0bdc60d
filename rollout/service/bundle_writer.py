"""Writing rendered bundles to a folder: atomically, and not at all when unchanged; secrets masked."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

from rollout.core.bundle import Bundle, BundleFile
from rollout.errors import Problem, RenderError
from rollout.masking import holds_secret, mask

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
        folders: set[Path] = set()
        for f in bundle.files:
            target = _inside(staging / FILES_DIR, f.path)
            if target.parent not in folders:  # one mkdir per folder, not one per file
                target.parent.mkdir(parents=True, exist_ok=True)
                folders.add(target.parent)
            _write_file(target, _at_rest(f.content), f.mode)
        (staging / MANIFEST_NAME).write_bytes(manifest)
        staging.chmod(0o755)
        _swap(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return True


def _at_rest(content: bytes) -> bytes:
    """What this machine keeps of a file: a decrypted secret only ever lands on the plant's host, so
    here it is ``***`` (the manifest keeps the real hash, and such a bundle is rendered again next time)."""
    text = content.decode("utf-8", "surrogateescape")
    return mask(text).encode("utf-8", "surrogateescape") if holds_secret(text) else content


def _write_file(path: Path, content: bytes, mode: int) -> None:
    """A new file with exactly ``content`` and ``mode``, in as few system calls as it takes."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view) :]
        os.fchmod(fd, mode)  # exactly the bundle's mode, whatever the umask
    finally:
        os.close(fd)


def existing_files(out: Path, head: Bundle) -> tuple[BundleFile, ...] | None:
    """The files of ``head``'s bundle if ``out`` already holds it, else None.

    ``head`` carries no files; its plant, layer, release, overlay hash and inputs hash say what
    the bundle was rendered from, so an equal manifest saves rendering it again. Every file is
    read back and must match the manifest (content and mode), so a changed folder is redone.
    """
    final = os.path.join(out, head.plant, head.layer)  # plain strings: this runs for every bundle of a fleet
    try:
        manifest = json.loads(_read(os.path.join(final, MANIFEST_NAME))[0])
        if not isinstance(manifest, dict) or manifest.get("inputs_hash") != head.inputs_hash:
            return None
        files = tuple(_read_back(os.path.join(final, FILES_DIR), entry) for entry in manifest["files"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):  # not a bundle of ours
        return None
    return files if replace(head, files=files).manifest() == manifest else None


def _read_back(root: str, entry: dict[str, Any]) -> BundleFile:
    parts = entry["path"].split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError("not a plain relative path")
    content, mode = _read(os.path.join(root, *parts))
    if f"{mode:04o}" != entry["mode"]:
        raise ValueError("mode changed")
    return BundleFile(entry["path"], content, mode)


def _read(path: str) -> tuple[bytes, int]:
    """A regular file's content and permission bits."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file")
        # One read: a file that is shorter than it was, or changes under us, fails its manifest's hash.
        content = os.read(fd, info.st_size + 1)
        if len(content) > info.st_size:
            raise ValueError("file grew while read")
        return content, stat.S_IMODE(info.st_mode)
    finally:
        os.close(fd)


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
