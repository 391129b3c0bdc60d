"""A per-user cache of loaded plants: a plant whose files have not changed is not parsed again.

Every verb loads every plant of its project; at ten thousand plants parsing their YAML is
nearly all the time a plan or a status takes (docs/benchmarks.md §7). An entry keeps what
loading a plant produced, as JSON (data, never code: no pickle), beside fingerprints of
everything that load read: the plant file's bytes, which inventory was chosen, its bytes
and whether it is executable, the ``group_vars/`` and ``host_vars/`` trees beside it, the
layers' inventory groups it was checked against, and the loader's own code. When any of
them differs the plant is read again. Only plants that loaded are kept: a problem is
always found afresh, and a cache that cannot be read or written is simply not used.

``ROLLOUT_CACHE_DIR`` names the folder (default ``$XDG_CACHE_HOME/rollout``, else
``~/.cache/rollout``); set to an empty value it turns the cache off.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from rollout.config.inventory import Host, Inventory

FORMAT = 2
MAX_TREE_ENTRIES = 100_000
"""Entries of a ``group_vars/``/``host_vars/`` tree fingerprinted; a larger tree is not cached."""
MAX_DEPTH = 32
_CODE = Path(__file__).resolve().parent


RACY_NS = 2_000_000_000
"""A file changed this close to its reading is checked by content next time, never by its status alone:
a second change within one timestamp tick (up to 2 s on some file systems) could leave that status equal."""


@dataclass(frozen=True)
class Seen:
    """One file as a load read it: its content's digest and, once it is old enough, its status."""

    digest: str
    status: tuple[int, ...] | None
    """Device, inode, size, mode, modification and change times (ns): equal means not written since."""

    @classmethod
    def of(cls, data: bytes, info: os.stat_result, read_at_ns: int) -> Seen:
        racy = info.st_ctime_ns >= read_at_ns - RACY_NS or info.st_mtime_ns >= read_at_ns - RACY_NS
        return cls(digest(data), None if racy else status(info))

    def as_json(self) -> list[Any]:
        return [self.digest, None if self.status is None else list(self.status)]

    @classmethod
    def from_json(cls, data: Any) -> Seen:
        found, info = data
        if not isinstance(found, str) or not (info is None or isinstance(info, list)):
            raise TypeError("not a file record")
        return cls(found, None if info is None else tuple(info))


def status(info: os.stat_result) -> tuple[int, ...]:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mode, info.st_mtime_ns, info.st_ctime_ns)


def recheck(path: str, seen: Seen, read: Callable[[], bytes], read_at_ns: int) -> Seen | None:
    """``seen``, or a newer record of the same content, while the file holds what it did; None once it
    changed. An unchanged status spares reading it (git's index does the same)."""
    info = os.stat(path)
    if seen.status is not None and status(info) == seen.status:
        return seen
    data = read()
    return Seen.of(data, info, read_at_ns) if digest(data) == seen.digest else None


@dataclass(frozen=True)
class Inputs:
    """Fingerprints of what loading one plant read (a cache entry's key)."""

    plant: Seen
    """The plant file (it holds the ``inventory:`` setting, if any)."""
    inventory: str
    """The inventory file chosen, relative to the project."""
    chosen_by_default: bool
    inventory_file: Seen
    executable: bool
    vars_trees: str
    groups: str

    def as_json(self) -> dict[str, Any]:
        return {**self.__dict__, "plant": self.plant.as_json(), "inventory_file": self.inventory_file.as_json()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Inputs:
        plant, inventory_file = Seen.from_json(data["plant"]), Seen.from_json(data["inventory_file"])
        return cls(**{**data, "plant": plant, "inventory_file": inventory_file})


def digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=20).hexdigest()


def groups_digest(groups: Iterable[str] | None) -> str:
    """The layers' inventory groups a plant is checked against (None: ``rollout.yaml`` did not load)."""
    return "-" if groups is None else digest("\0".join(groups).encode())


def default_dir() -> Path | None:
    configured = os.environ.get("ROLLOUT_CACHE_DIR")
    if configured is not None:
        return Path(configured) if configured else None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rollout"


@functools.cache
def code_version() -> str:
    """The loader's code and the parser's version: an entry made by other code is never trusted."""
    import yaml

    h = hashlib.blake2b(digest_size=20)
    h.update(f"{FORMAT} {sys.version_info[:2]} {yaml.__version__}".encode())
    for path in sorted(_CODE.rglob("*.py")):
        h.update(path.relative_to(_CODE).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


class TreeFingerprints:
    """Digests of the ``group_vars/`` and ``host_vars/`` trees beside inventory files, once per folder."""

    def __init__(self) -> None:
        self._known: dict[str, str | None] = {}

    def of(self, folder: str) -> str | None:
        """None when a tree cannot be read whole (the plant is then not cached)."""
        if folder not in self._known:
            self._known[folder] = _trees_digest(Path(folder))
        return self._known[folder]


def _trees_digest(folder: Path) -> str | None:
    h = hashlib.blake2b(digest_size=20)
    budget = [MAX_TREE_ENTRIES]
    try:
        for sub in ("group_vars", "host_vars"):
            _walk(folder / sub, sub, h, budget, 0)
    except (OSError, _TooLarge):
        return None
    return h.hexdigest()


class _TooLarge(Exception):
    pass


def _walk(path: Path, rel: str, h: Any, budget: list[int], depth: int) -> None:
    """Name, kind and content of every entry, following symlinks as the inventory reader does."""
    budget[0] -= 1
    if budget[0] < 0 or depth > MAX_DEPTH:
        raise _TooLarge
    try:
        info = path.stat()
    except FileNotFoundError:  # absent, or a dangling symlink: both read as nothing
        h.update(b"n\0" + rel.encode() + b"\0")
        return
    if stat.S_ISDIR(info.st_mode):
        h.update(b"d\0" + rel.encode() + b"\0")
        for name in sorted(os.listdir(path)):
            _walk(path / name, f"{rel}/{name}", h, budget, depth + 1)
    elif stat.S_ISREG(info.st_mode):
        h.update(b"f\0" + rel.encode() + b"\0" + digest(path.read_bytes()).encode())
    else:
        h.update(b"o\0" + rel.encode() + b"\0")


def inventory_as_json(inventory: Inventory) -> dict[str, Any]:
    return {
        "file": inventory.file,
        "hosts": [[h.name, h.address, dict(h.vars)] for h in inventory.hosts.values()],
        "groups": {g: list(v) for g, v in inventory.groups.items()},
        "children": {g: list(v) for g, v in inventory.children.items()},
        "direct": {g: list(v) for g, v in inventory.direct.items()},
    }


def inventory_from_json(data: Mapping[str, Any]) -> Inventory:
    def groups(key: str) -> MappingProxyType[str, tuple[str, ...]]:
        return MappingProxyType({g: tuple(v) for g, v in data[key].items()})

    rows = data["hosts"]
    if type(rows) is not list or not all(_host_row(row) for row in rows):
        raise TypeError("not an inventory's hosts")  # a damaged entry: the plant is read again
    hosts = {name: Host(name, address, MappingProxyType(variables)) for name, address, variables in rows}
    return Inventory(data["file"], MappingProxyType(hosts), groups("groups"), groups("children"), groups("direct"))


def _host_row(row: Any) -> bool:
    return type(row) is list and len(row) == 3 and type(row[0]) is type(row[1]) is str and type(row[2]) is dict


def same(a: Any, b: Any) -> bool:
    """Equal with the same types and key order throughout: what survives JSON unchanged."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def survives_json(value: Any) -> bool:
    """Whether ``value`` comes back from JSON exactly (no NaN, dates, tuples, non-string keys)."""
    try:
        return same(json.loads(json.dumps(value, allow_nan=False)), value)
    except (TypeError, ValueError):
        return False


def _own_file_bytes(file: Path) -> bytes:
    """The cache file's bytes, if this user owns it and no one else may write it: its entries are
    trusted as parsed plants, so a file another user could have written is not read."""
    with open(file, "rb") as f:
        info = os.fstat(f.fileno())
        if info.st_uid != os.getuid() or info.st_mode & 0o022:
            raise ValueError("not this user's own cache file")
        return f.read()


class PlantCache:
    """The entries of one project, read once, written back whole when they changed."""

    def __init__(self, file: Path | None, entries: dict[str, dict[str, Any]]) -> None:
        self.file = file
        self.entries = entries
        self.changed = False

    @classmethod
    def open(cls, root: Path, folder: Path | None) -> PlantCache:
        if folder is None:
            return cls(None, {})
        file = folder / f"plants-{digest(str(root.resolve()).encode())}.json"
        try:
            data = json.loads(_own_file_bytes(file))
        except (OSError, ValueError):
            return cls(file, {})
        fresh = isinstance(data, dict) and data.get("code") == code_version() and isinstance(data.get("plants"), dict)
        return cls(file, data["plants"] if fresh else {})

    @property
    def enabled(self) -> bool:
        return self.file is not None

    def entry(self, name: str) -> dict[str, Any] | None:
        found = self.entries.get(name)
        return found if isinstance(found, dict) else None

    def put(self, name: str, inputs: Inputs, config: Any, inventory: dict[str, Any]) -> None:
        self.entries[name] = {"inputs": inputs.as_json(), "config": config, "inventory": inventory}
        self.changed = True

    def keep_only(self, names: Iterable[str]) -> None:
        wanted = set(names)
        gone = [n for n in self.entries if n not in wanted]
        for name in gone:
            del self.entries[name]
        self.changed = self.changed or bool(gone)

    def save(self) -> None:
        """Write the entries atomically (a reader sees the old file or the new one); failures are ignored."""
        if self.file is None or not self.changed:
            return
        try:
            self.file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.file.parent, prefix=".plants-", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as out:  # mkstemp: mode 0600, inventories may hold connection settings
                    out.write(json.dumps({"code": code_version(), "plants": self.entries}).encode())
                os.replace(tmp, self.file)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError:
            return
        self.changed = False
