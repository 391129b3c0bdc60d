"""Per-plant and per-archetype overlays: read confined to their folder, checked against policy.

An overlay folder holds at most:

* ``values.yaml``: values merged over the base (see :mod:`rollout.values`);
* ``files/<path>``: files that replace or add the code-base file at ``<path>``;
* ``README.md``: why this plant differs (never deployed).

Symlinks, special files and anything else are refused, so an overlay can only ever
contribute the bytes inside its own folder.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import MappingProxyType

from rollout.config.codebase import Release
from rollout.config.filenames import name_problems, name_refusal
from rollout.config.models import LayerConfig, OverlayPolicy
from rollout.config.yamlfile import YamlDoc, read_yaml
from rollout.errors import ConfigError, Problem

ARCHETYPES_DIR = "_archetypes"
MAX_OVERLAY_FILES = 2000
MAX_OVERLAY_FILE_BYTES = 16 * 1024 * 1024
_ALLOWED_TOP = {"values.yaml", "files", "README.md"}


@dataclass(frozen=True)
class Overlay:
    label: str
    """``archetype:<name>`` or ``plant:<name>``."""
    folder: str
    values: YamlDoc | None
    files: Mapping[str, bytes]
    """Code-base path -> content."""

    def display(self, path: str) -> str:
        return f"{self.folder}/files/{path}"


def read_overlay(root: Path, folder: str, label: str) -> Overlay:
    """Read ``root/folder``; every problem found is reported together."""
    base = root / folder
    problems: list[Problem] = []
    _refuse_links(root, folder, problems)
    if problems:
        raise ConfigError(problems)
    values: YamlDoc | None = None
    files: dict[str, bytes] = {}
    for entry in sorted(os.scandir(base), key=lambda e: e.name):
        display = f"{folder}/{entry.name}"
        if entry.name not in _ALLOWED_TOP:
            problems.append(
                Problem(display, message="unexpected entry in overlay", expected="values.yaml, files/ or README.md")
            )
        elif entry.name == "values.yaml":
            values = _read_values(entry, display, problems)
        elif entry.name == "files":
            _walk_files(Path(entry.path), f"{folder}/files", PurePosixPath(), files, problems, _place(folder))
            # names refused one by one were left out as the walk met them; those left may still clash
            problems += name_problems({path: f"{folder}/files/{path}" for path in files}, _place(folder))
        elif not _is_regular(entry):
            problems.append(Problem(display, message="not a regular file"))
    if problems:
        raise ConfigError(problems)
    return Overlay(label, folder, values, MappingProxyType(files))


def _refuse_links(root: Path, folder: str, problems: list[Problem]) -> None:
    current = root
    for part in PurePosixPath(folder).parts:
        current = current / part
        if current.is_symlink():
            problems.append(
                Problem(folder, message=f"{part!r} is a symlink", expected="a real folder inside the project")
            )


def _read_values(entry: os.DirEntry[str], display: str, problems: list[Problem]) -> YamlDoc | None:
    if not _is_regular(entry):
        problems.append(Problem(display, message="not a regular file (symlinks are refused)"))
        return None
    try:
        return read_yaml(Path(entry.path), display)
    except ConfigError as exc:
        problems.extend(exc.problems)
        return None


def _is_regular(entry: os.DirEntry[str]) -> bool:
    return stat.S_ISREG(entry.stat(follow_symlinks=False).st_mode)


def _walk_files(
    folder: Path, display: str, rel: PurePosixPath, out: dict[str, bytes], problems: list[Problem], place: str
) -> None:
    """Read the files under ``folder`` into ``out``; ``place`` names the overlay in messages."""
    mode = folder.lstat().st_mode
    if not stat.S_ISDIR(mode):
        problems.append(Problem(display, message="not a folder (symlinks are refused)", expected="a folder of files"))
        return
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        path = rel / entry.name
        shown = f"{display}/{entry.name}"
        refusal = name_refusal(entry.name, shown, place)
        st = entry.stat(follow_symlinks=False)
        if refusal is not None:  # and what a refused folder holds is not read
            problems.append(refusal)
        elif stat.S_ISLNK(st.st_mode):
            problems.append(Problem(shown, message="symlinks are not allowed in overlays", expected="a regular file"))
        elif stat.S_ISDIR(st.st_mode):
            _walk_files(Path(entry.path), shown, path, out, problems, place)
        elif not stat.S_ISREG(st.st_mode):
            problems.append(Problem(shown, message="not a regular file", expected="a regular file"))
        elif st.st_size > MAX_OVERLAY_FILE_BYTES:
            problems.append(
                Problem(shown, message="file too large", expected=f"at most {MAX_OVERLAY_FILE_BYTES} bytes")
            )
        elif len(out) >= MAX_OVERLAY_FILES:
            problems.append(
                Problem(shown, message="too many files in overlay", expected=f"at most {MAX_OVERLAY_FILES}")
            )
            return
        else:
            out[path.as_posix()] = Path(entry.path).read_bytes()


def _place(folder: str) -> str:
    return f"overlay {folder}"


def glob_match(path: str, pattern: str) -> bool:
    """Match segment by segment: ``*`` stays inside one folder; ``**`` spans any number."""
    return _match(PurePosixPath(path).parts, PurePosixPath(pattern).parts)


def _match(parts: tuple[str, ...], pats: tuple[str, ...]) -> bool:
    if not pats:
        return not parts
    if pats[0] == "**":
        return any(_match(parts[i:], pats[1:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], pats[0]) and _match(parts[1:], pats[1:])


def policy_problems(
    overlay: Overlay, release: Release, policy: OverlayPolicy, layers: list[LayerConfig], values_file: str
) -> list[Problem]:
    """Everything an overlay's files do that ``rollout.yaml`` does not allow, at this release."""
    problems = []
    sources = sorted({layer.source_dir for layer in layers})
    for path in overlay.files:
        shown = overlay.display(path)
        if path == values_file:
            problems.append(
                Problem(shown, message="the base values file cannot be replaced", expected="values in values.yaml")
            )
        elif not any(path.startswith(src.rstrip("/") + "/") or src == "." for src in sources):
            where = ", ".join(f"{s}/" for s in sources)
            problems.append(Problem(shown, message="not inside any layer's folder", expected=f"a path under {where}"))
        elif path in release.files:
            if not any(glob_match(path, p) for p in policy.may_replace):
                problems.append(
                    Problem(
                        shown,
                        message=f"replaces {path!r}, which overlays may not replace",
                        expected="a path matching overlays.may_replace in rollout.yaml",
                    )
                )
        elif not any(glob_match(path, p) for p in policy.may_add):
            problems.append(
                Problem(
                    shown,
                    message=f"adds {path!r}, which overlays may not add",
                    expected="a path matching overlays.may_add in rollout.yaml",
                )
            )
    return problems
