"""The solution's code base, read from git at a release ref (never from the working tree)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any

import git
from gitdb.exc import BadName, BadObject

from .errors import ReleaseError

MAX_CODEBASE_BYTES = 512 * 1024 * 1024
# Which setting a ReleaseError is about; the project maps these onto rollout.yaml.
REPO, PATH, REF = "codebase.repo", "codebase.path", "codebase.ref"
_FILE_MODES = {0o100644: 0o644, 0o100755: 0o755, 0o100664: 0o644}


@dataclass(frozen=True)
class Release:
    """The code base at one ref: its id (the ref as given), commit and content hash."""

    id: str
    commit: str
    content_hash: str
    files: Mapping[str, bytes] = field(repr=False)
    """Path relative to the code-base folder -> content."""
    modes: Mapping[str, int] = field(repr=False)
    """Path -> 0o644 or 0o755."""
    origin: str = ""
    """How to name a file of this release in messages: ``<origin>/<path>@<ref>``."""

    @property
    def short(self) -> str:
        return f"{self.id}@{self.commit[:12]}"

    def display(self, path: str) -> str:
        prefix = f"{self.origin}/" if self.origin not in ("", ".") else ""
        return f"{prefix}{path}@{self.id}"


def open_release(repo_dir: Path, subdir: str, ref: str, display_repo: str) -> Release:
    """Read every file under ``subdir`` of the repository at ``ref``."""
    origin = (PurePosixPath(display_repo) / subdir).as_posix()
    if not ref or ref.startswith("-") or any(c in ref for c in "\x00\n "):
        raise ReleaseError.one(
            display_repo, f"invalid release ref {ref!r}", location=REF, expected="a tag, branch or commit"
        )
    try:
        repo = git.Repo(repo_dir, search_parent_directories=True)
    except (git.NoSuchPathError, git.InvalidGitRepositoryError):
        raise ReleaseError.one(
            display_repo,
            f"{display_repo!r} is not in a git repository",
            location=REPO,
            expected="the code base's git repository",
        ) from None
    with repo:
        inner = _inner_path(repo, repo_dir, subdir, display_repo)
        commit = _resolve(repo, ref, display_repo)
        files, modes = _read_tree(commit, inner, ref, origin)
    return Release(
        id=ref,
        commit=commit.hexsha,
        content_hash=content_hash(files, modes),
        files=MappingProxyType(files),
        modes=MappingProxyType(modes),
        origin=origin,
    )


def content_hash(files: Mapping[str, bytes], modes: Mapping[str, int]) -> str:
    """sha256 over every path, mode and content: equal code bases hash equal, whatever the commit."""
    digest = hashlib.sha256()
    for path in sorted(files):
        entry = f"{path}\0{modes[path]:o}\0{hashlib.sha256(files[path]).hexdigest()}\n"
        digest.update(entry.encode())
    return digest.hexdigest()


def _inner_path(repo: git.Repo, repo_dir: Path, subdir: str, display: str) -> str:
    """The code-base folder as a path inside the repository's tree."""
    if repo.bare or repo.working_tree_dir is None:
        base = PurePosixPath()
    else:
        top = Path(repo.working_tree_dir).resolve()
        try:
            base = PurePosixPath(repo_dir.resolve().relative_to(top).as_posix())
        except ValueError:
            raise ReleaseError.one(display, "code base folder is outside its repository", location=REPO) from None
    inner = (base / subdir).as_posix()
    return "" if inner == "." else inner


def _resolve(repo: git.Repo, ref: str, display: str) -> git.Commit:
    try:
        return repo.commit(ref)
    except (BadName, BadObject, ValueError, IndexError, git.GitCommandError):
        known = sorted(t.name for t in repo.tags)[-8:] + sorted(h.name for h in repo.heads)[:4]
        hint = "known refs include: " + ", ".join(known) if known else "the repository has no tags or branches"
        raise ReleaseError.one(
            display, f"unknown release ref {ref!r} ({hint})", location=REF, expected="a tag, branch or commit"
        ) from None


def _read_tree(commit: git.Commit, inner: str, ref: str, origin: str) -> tuple[dict[str, bytes], dict[str, int]]:
    try:
        tree = commit.tree / inner if inner else commit.tree
    except KeyError:
        raise ReleaseError.one(origin, f"folder {inner!r} does not exist at release {ref!r}", location=PATH) from None
    if tree.type != "tree":
        raise ReleaseError.one(origin, f"{inner!r} is not a folder at release {ref!r}", location=PATH)
    files: dict[str, bytes] = {}
    modes: dict[str, int] = {}
    total = 0
    entries: Iterable[Any] = tree.traverse()  # GitPython's traverse() is loosely typed
    for item in entries:
        if item.type == "tree":
            continue
        rel = PurePosixPath(item.path).relative_to(inner).as_posix() if inner else str(item.path)
        if any("\udc80" <= c <= "\udcff" for c in rel):  # bytes of a name git holds that were not UTF-8
            # such a name could not be written in a manifest, nor named the same on every host
            raise ReleaseError.one(f"{origin}/{rel}@{ref}", "file name is not UTF-8", expected="UTF-8 file names")
        if item.type != "blob" or item.mode not in _FILE_MODES:
            what = (
                "a symlink"
                if item.mode == 0o120000
                else "a submodule"
                if item.type in ("commit", "submodule")
                else "special"
            )
            raise ReleaseError.one(
                f"{origin}/{rel}@{ref}", f"the code base holds {what}", expected="regular files only"
            )
        data = item.data_stream.read()
        total += len(data)
        if total > MAX_CODEBASE_BYTES:
            raise ReleaseError.one(origin, f"code base larger than {MAX_CODEBASE_BYTES} bytes at {ref!r}")
        files[rel] = data
        modes[rel] = _FILE_MODES[item.mode]
    return files, modes
