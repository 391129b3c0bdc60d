"""The solution's code base, read from git at a release ref (never from the working tree)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from rollout.config.filenames import name_problems, name_refusal
from rollout.errors import Problem, ReleaseError

if TYPE_CHECKING:  # GitPython costs ~80 ms to import: only a verb that reads a release pays it
    import git

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
    import git

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
    import git
    from gitdb.exc import BadName, BadObject

    try:
        return repo.commit(ref)
    except (BadName, BadObject, ValueError, IndexError, git.GitCommandError):
        known = sorted(t.name for t in repo.tags)[-8:] + sorted(h.name for h in repo.heads)[:4]
        hint = "known refs include: " + ", ".join(known) if known else "the repository has no tags or branches"
        raise ReleaseError.one(
            display, f"unknown release ref {ref!r} ({hint})", location=REF, expected="a tag, branch or commit"
        ) from None


def _read_tree(commit: git.Commit, inner: str, ref: str, origin: str) -> tuple[dict[str, bytes], dict[str, int]]:
    tree = _folder(commit, inner, ref, origin)
    files: dict[str, bytes] = {}
    modes: dict[str, int] = {}
    problems: list[Problem] = []
    total = 0
    for item, rel in _named_entries(tree, inner, ref, origin, problems):
        if item.type != "blob" or item.mode not in _FILE_MODES:
            problems.append(
                Problem(
                    _shown(origin, rel, ref),
                    message=f"the code base holds {_kind(item)}",
                    expected="regular files only",
                )
            )
            continue
        data = item.data_stream.read()
        total += len(data)
        if total > MAX_CODEBASE_BYTES:
            raise ReleaseError.one(origin, f"code base larger than {MAX_CODEBASE_BYTES} bytes at {ref!r}")
        files[rel] = data
        modes[rel] = _FILE_MODES[item.mode]
    problems += name_problems({rel: _shown(origin, rel, ref) for rel in files}, _place(ref))  # clashes under NFC
    if problems:
        raise ReleaseError(problems)
    return files, modes


def _folder(commit: git.Commit, inner: str, ref: str, origin: str) -> Any:
    try:
        tree = commit.tree / inner if inner else commit.tree
    except KeyError:
        raise ReleaseError.one(origin, f"folder {inner!r} does not exist at release {ref!r}", location=PATH) from None
    except ValueError as exc:  # GitPython refuses an entry on the way ('..', an alias of .git): a crafted tree
        raise ReleaseError.one(
            origin, f"git refuses a name on the way to {inner!r} at release {ref!r}: {exc}"
        ) from None
    if tree.type != "tree":
        raise ReleaseError.one(origin, f"{inner!r} is not a folder at release {ref!r}", location=PATH)
    return tree


def _named_entries(tree: Any, inner: str, ref: str, origin: str, problems: list[Problem]) -> Iterator[tuple[Any, str]]:
    """Every entry but folders, with its path under ``inner``; names are checked as git holds
    them, so a name refused here never reaches a bundle or a host."""
    refused: list[str] = []  # folders refused: what they hold is neither read nor reported again
    for item in _traversed(tree, inner, ref, origin, problems):
        rel = _rel(item, inner)
        if any(rel.startswith(folder + "/") for folder in refused):
            continue
        refusal = name_refusal(rel, _shown(origin, rel, ref), _place(ref))
        if refusal is not None:
            problems.append(refusal)
            refused += [rel] if item.type == "tree" else []
        elif item.type != "tree":
            yield item, rel


def _traversed(tree: Any, inner: str, ref: str, origin: str, problems: list[Problem]) -> Iterator[Any]:
    """``tree.traverse()``; a tree entry that GitPython refuses to read ends it with a problem."""
    entries: Iterator[Any] = iter(tree.traverse())  # GitPython's traverse() is loosely typed
    folder = ""  # GitPython reads a folder's entries right after yielding it: that folder holds the culprit
    while True:
        try:
            item = next(entries)
        except StopIteration:
            return
        except ValueError as exc:  # an entry named '', '.', '..' or like .git (.GIT, .git + U+200C): crafted
            reason = str(exc).replace("'tree/", "'")  # GitPython checks a name as the path 'tree/<name>'
            problems.append(
                Problem(_shown(origin, folder, ref), message=f"git refuses a name in this folder: {reason}")
            )
            return
        folder = _rel(item, inner) if item.type == "tree" else folder
        yield item


def _rel(item: Any, inner: str) -> str:
    """The item's path under the code-base folder, as git stores it ('.' or '' are not dropped)."""
    return str(item.path)[len(inner) + 1 :] if inner else str(item.path)


def _shown(origin: str, rel: str, ref: str) -> str:
    return f"{origin}/{rel}@{ref}" if rel else f"{origin}@{ref}"


def _place(ref: str) -> str:
    return f"code base at release {ref}"


def _kind(item: Any) -> str:
    """What a tree entry that is not a regular file is, for messages."""
    if item.mode == 0o120000:
        return "a symlink"
    return "a submodule" if item.type in ("commit", "submodule") else "special"
