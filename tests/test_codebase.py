"""The code base at a release, read from real git repositories with GitPython."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import MiniProject, commit_all, git
from rollout.config.codebase import open_release
from rollout.errors import ReleaseError


def test_tag_branch_commit_and_expression_resolve(mini: MiniProject) -> None:
    head = git(mini.root, "rev-parse", "HEAD")
    mini.write("app/edge/static.txt", "v2\n")
    mini.commit("v2")
    git(mini.root, "tag", "-a", "v2-annotated", "-m", "annotated", "v2")
    for ref, expected in [("v1", head), (head, head), (head[:10], head), ("HEAD~1", head)]:
        assert open_release(mini.root, "app", ref, ".").commit == expected, ref
    v2 = git(mini.root, "rev-parse", "v2")
    for ref in ("v2", "main", "HEAD", "v2-annotated"):
        release = open_release(mini.root, "app", ref, ".")
        assert release.commit == v2 and release.id == ref
        assert release.files["edge/static.txt"] == b"v2\n"


def test_content_hash_depends_on_content_only(mini: MiniProject) -> None:
    one = open_release(mini.root, "app", "v1", ".")
    mini.write("README.md", "outside the code base folder\n")
    mini.commit("v1b")
    other = open_release(mini.root, "app", "v1b", ".")
    assert one.commit != other.commit and one.content_hash == other.content_hash
    (mini.root / "app/ingest/run.sh").chmod(0o644)
    mini.commit("v1c")
    assert open_release(mini.root, "app", "v1c", ".").content_hash != one.content_hash


def test_working_tree_changes_are_invisible(mini: MiniProject) -> None:
    (mini.root / "app/edge/static.txt").write_text("uncommitted\n")
    (mini.root / "app/edge/new.txt").write_text("untracked\n")
    release = open_release(mini.root, "app", "v1", ".")
    assert release.files["edge/static.txt"] == b"unchanged bytes\n" and "edge/new.txt" not in release.files


def test_unknown_ref_lists_known_ones(mini: MiniProject) -> None:
    with pytest.raises(ReleaseError) as info:
        open_release(mini.root, "app", "v9", ".")
    problem = info.value.problems[0]
    assert "unknown release ref 'v9'" in problem.message and "v1" in problem.message
    assert problem.location == "codebase.ref"


def test_bare_repository_and_subfolder_project(tmp_path: Path, mini: MiniProject) -> None:
    bare = tmp_path / "solution.git"
    git(tmp_path, "clone", "-q", "--bare", str(mini.root), str(bare))
    release = open_release(bare, "app", "v1", str(bare))
    assert release.files["edge/static.txt"] == b"unchanged bytes\n"
    nested = tmp_path / "outer"
    (nested / "deploy" / "app").mkdir(parents=True)
    (nested / "deploy" / "app" / "x.txt").write_text("x\n")
    commit_all(nested, "nested", "n1")
    # repo given as the project folder, which sits below the repository's top
    assert open_release(nested / "deploy", "app", "n1", ".").files == {"x.txt": b"x\n"}


def test_submodules_and_symlinks_are_refused(mini: MiniProject) -> None:
    (mini.root / "app/edge/link").symlink_to("static.txt")
    mini.commit("v2")
    with pytest.raises(ReleaseError, match="symlink"):
        open_release(mini.root, "app", "v2", ".")
