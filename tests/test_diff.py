"""Diffs between bundles: pure, per layer, readable by patch tools."""

from __future__ import annotations

from rollout.core.bundle import Bundle, BundleFile
from rollout.core.diff import diff_bundles


def bundle(layer: str, *files: tuple[str, bytes, int]) -> Bundle:
    return Bundle("p", layer, "r", "c" * 40, "h", "o", "i", tuple(BundleFile(p, d, m) for p, d, m in files))


def test_changes_are_reported_per_file_and_kind() -> None:
    old = [bundle("edge", ("a.txt", b"one\n", 0o644), ("gone.txt", b"x\n", 0o644), ("run.sh", b"#!\n", 0o644))]
    new = [bundle("edge", ("a.txt", b"two\n", 0o644), ("new.txt", b"y\n", 0o644), ("run.sh", b"#!\n", 0o755))]
    changes = {(c.path, c.status): c.text for c in diff_bundles(old, new, "v1", "v2")}
    assert set(changes) == {("a.txt", "modified"), ("gone.txt", "removed"), ("new.txt", "added"), ("run.sh", "mode")}
    assert changes[("a.txt", "modified")].startswith("--- v1/edge/a.txt\n+++ v2/edge/a.txt\n")
    assert "+++ /dev/null" in changes[("gone.txt", "removed")]
    assert changes[("run.sh", "mode")] == "mode 0644 -> 0755: edge/run.sh\n"


def test_missing_final_newline_and_binary_files() -> None:
    old = [bundle("edge", ("a", b"left", 0o644), ("b.bin", b"\x00\x01", 0o644))]
    new = [bundle("edge", ("a", b"right", 0o644), ("b.bin", b"\x00\x02", 0o644))]
    changes = {c.path: c.text for c in diff_bundles(old, new, "v1", "v2")}
    assert "-left\n\\ No newline at end of file\n+right\n\\ No newline at end of file\n" in changes["a"]
    assert changes["b.bin"] == "Binary files v1/edge/b.bin and v2/edge/b.bin differ\n"


def test_layers_only_in_one_release_are_listed() -> None:
    changes = diff_bundles([bundle("old", ("x", b"1\n", 0o644))], [bundle("new", ("y", b"2\n", 0o644))], "a", "b")
    assert [(c.layer, c.status) for c in changes] == [("new", "added"), ("old", "removed")]
