"""Unified diffs between the bundles of two releases of one plant. Pure."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from rollout.core.bundle import Bundle, BundleFile
from rollout.masking import mask

Status = Literal["added", "removed", "modified", "mode"]


@dataclass(frozen=True)
class FileChange:
    layer: str
    path: str
    status: Status
    text: str
    """The unified diff, or a one-line note for binary files and mode changes."""


def diff_bundles(old: list[Bundle], new: list[Bundle], old_label: str, new_label: str) -> list[FileChange]:
    """Every file that differs, layer by layer in the order of ``new`` (then layers only in ``old``)."""
    old_by_layer = {b.layer: b for b in old}
    new_by_layer = {b.layer: b for b in new}
    layers = list(new_by_layer) + [name for name in old_by_layer if name not in new_by_layer]
    changes: list[FileChange] = []
    for layer in layers:
        before = {f.path: f for f in old_by_layer[layer].files} if layer in old_by_layer else {}
        after = {f.path: f for f in new_by_layer[layer].files} if layer in new_by_layer else {}
        for path in sorted(set(before) | set(after)):
            change = _change(layer, path, before.get(path), after.get(path), old_label, new_label)
            if change is not None:
                changes.append(change)
    return changes


def _change(
    layer: str, path: str, a: BundleFile | None, b: BundleFile | None, old_label: str, new_label: str
) -> FileChange | None:
    if a is not None and b is not None and a.content == b.content:
        if a.mode == b.mode:
            return None
        return FileChange(layer, path, "mode", f"mode {a.mode:04o} -> {b.mode:04o}: {layer}/{path}\n")
    status: Status = "added" if a is None else "removed" if b is None else "modified"
    old_text, new_text = _text(a), _text(b)
    if old_text is None or new_text is None:
        return FileChange(
            layer, path, status, f"Binary files {old_label}/{layer}/{path} and {new_label}/{layer}/{path} differ\n"
        )
    if old_text == new_text:  # they differ only where a secret is masked
        return FileChange(layer, path, status, f"{layer}/{path}: a secret changed (shown as ***)\n")
    lines = difflib.unified_diff(
        old_text.splitlines(keepends=True),
        new_text.splitlines(keepends=True),
        fromfile=f"{old_label}/{layer}/{path}" if a else "/dev/null",
        tofile=f"{new_label}/{layer}/{path}" if b else "/dev/null",
    )
    return FileChange(layer, path, status, "".join(_terminated(lines)))


def _text(f: BundleFile | None) -> str | None:
    if f is None:
        return ""
    if b"\0" in f.content:
        return None
    try:
        return mask(f.content.decode("utf-8"))  # a line that quotes a secret shows ***
    except UnicodeDecodeError:
        return None


def _terminated(lines: Iterable[str]) -> list[str]:
    """Mark a last line without a newline the way diff(1) does, so patch tools accept it."""
    return [line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines]
