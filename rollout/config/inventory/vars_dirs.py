"""``group_vars/`` and ``host_vars/`` beside an inventory file, found as Ansible's host_group_vars plugin finds them.

For a group or host NAME the first of ``NAME`` (a file, or a folder), ``NAME.yml``,
``NAME.yaml`` and ``NAME.json`` that exists is read; a folder gives every file in it and
in its sub-folders, in sorted order, that has no extension or one of those, skipping
hidden files, backups (``~``) and folders with an extension. Files are merged in that
order, later keys replacing earlier ones. Names starting with '/' are never looked up.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any

from rollout.config.inventory.source import read_text
from rollout.config.inventory.yaml_doc import Unsupported, json_key, line_of, load, plain
from rollout.errors import ConfigError

EXTENSIONS = (".yml", ".yaml", ".json")
SUBDIRS = ("group_vars", "host_vars")
MAX_FILES = 1_000
"""Files read for one group or host; a folder of more (or a symlink loop) is refused."""
MAX_DEPTH = 16


class VarsDirs:
    """The variables files of one inventory, read once per name."""

    @classmethod
    def beside(cls, folder: Path, display_folder: str) -> VarsDirs | None:
        """The folders beside an inventory file; None when there are none (most plants: nothing to read)."""
        base = str(folder)
        if not any(os.path.lexists(os.path.join(base, sub)) for sub in SUBDIRS):
            return None
        return cls(folder, display_folder)

    def __init__(self, folder: Path, display_folder: str) -> None:
        self.folder = folder
        self.display_folder = display_folder
        self.listings: dict[str, dict[str, Path] | None] = {}
        self.known: dict[tuple[str, str], dict[str, Any]] = {}

    def __call__(self, kind: str, name: str) -> dict[str, Any]:
        """Variables of group or host ``name`` (kind 'group' or 'host') from ``<kind>_vars/``."""
        key = (kind, name)
        if key not in self.known:
            self.known[key] = self._read(f"{kind}_vars", name)
        return self.known[key]

    def _read(self, subdir: str, name: str) -> dict[str, Any]:
        entries = self._listing(subdir)
        if entries is None or name.startswith("/"):  # Ansible skips 'chroot'-like names such as /srv/root
            return {}
        if "/" in name or name in (".", "..") or "\x00" in name:
            raise ConfigError.one(
                self._display(subdir),
                f"{subdir[:-5]} {name!r} cannot be looked up here (Ansible would read files outside its own)",
                expected=f"group and host names without '/', other than '.' and '..', beside a {subdir}/ folder",
            )
        merged: dict[str, Any] = {}
        for path in self._found(subdir, entries, name):
            merged.update(self._file(path))
        return merged

    def _listing(self, subdir: str) -> dict[str, Path] | None:
        if subdir not in self.listings:
            folder = self.folder / subdir
            if not folder.exists():
                self.listings[subdir] = None
            elif not folder.is_dir():
                raise ConfigError.one(self._display(subdir), "not a folder", expected="a folder of variables files")
            else:
                names = self._list(folder, self._display(subdir))
                self.listings[subdir] = {name: folder / name for name in names}
        return self.listings[subdir]

    @staticmethod
    def _list(folder: Path, display: str) -> list[str]:
        try:
            return sorted(os.listdir(folder))
        except OSError as exc:
            raise ConfigError.one(display, f"cannot read: {exc.strerror}") from None

    def _found(self, subdir: str, entries: dict[str, Path], name: str) -> list[Path]:
        for candidate in (name, *(name + ext for ext in EXTENSIONS)):
            path = entries.get(candidate)
            if path is None or not path.exists():  # a dangling symlink is no file
                continue
            if path.is_dir():
                found: list[Path] = []
                self._walk(path, found, 0)
                return found
            return [path]
        return []

    def _walk(self, folder: Path, found: list[Path], depth: int) -> None:
        if depth > MAX_DEPTH:
            raise ConfigError.one(self._relative(folder), f"folders nested over {MAX_DEPTH} levels")
        for entry in self._list(folder, self._relative(folder) + "/"):
            if entry.startswith(".") or entry.endswith("~"):
                continue
            path, extension = folder / entry, os.path.splitext(entry)[1]
            if path.is_dir() and not extension:
                self._walk(path, found, depth + 1)
            elif path.is_file() and (not extension or extension in EXTENSIONS):
                found.append(path)
                if len(found) > MAX_FILES:
                    raise ConfigError.one(self._relative(folder), f"more than {MAX_FILES} variables files")

    def _file(self, path: Path) -> dict[str, Any]:
        display = self._relative(path)
        doc = load(read_text(path, display), display)
        if not doc.data:  # empty files (and files of only '{}' or 'false') add nothing, as in Ansible
            return {}
        if not isinstance(doc.data, dict):
            found = type(doc.data).__name__
            raise ConfigError.one(display, "not a mapping of variables", line=doc.line, found=found)
        out: dict[str, Any] = {}
        for key, value in doc.data.items():
            try:
                out[json_key(key)] = plain(value)
            except Unsupported as exc:
                raise ConfigError.one(display, f"unsupported value: {exc}", line=line_of(doc.data, key)) from None
        return out

    def _display(self, subdir: str, name: str = "") -> str:
        return str(PurePosixPath(self.display_folder, subdir, name)) + ("" if name else "/")

    def _relative(self, path: Path) -> str:
        return str(PurePosixPath(self.display_folder, path.relative_to(self.folder).as_posix()))
