"""Fuzzing: hostile and malformed projects never crash rollout, never write outside, never deploy.

Hypothesis generates 840 projects (derandomized: the same on every run; the ones that once
found a bug are replayed first), each the valid mini project of ``conftest.py`` with one
hostile change: structure and text mutations of every YAML file (``rollout.yaml``,
plants, inventories, overlay and base values, playbooks), wrong types, huge values, deep
nesting, alias and merge-key bombs, odd unicode (RTL, NUL, BOM, surrogates, file names
that are not UTF-8), overlays with path tricks (symlinks, FIFOs, other plants' names,
files the policy forbids), templates that try to escape the Jinja sandbox or read files
(in overlays, in the code base and in the checks of ``rollout.yaml``), inventories
with bad hosts, and file names no host should carry (control, bidi and invisible
characters; names equal under NFC) in overlays, the code base and rendered bundles.
For every one:

* ``rollout validate`` (plain and ``--json``) and ``rollout render --out DIR`` exit 0 or 2:
  never 70, never a traceback; ``render`` fails only where ``validate`` does;
* exit 2 lists problems, each naming a file of the project (or of the code base at the
  release) and a place in it (line, key path or the offending name), and one of them
  names the file the change was made in (or one the change necessarily affects);
* nothing is written outside the output folder: the whole temporary tree (but the output
  and the project's ``.rollout/``) and ``~/.local/state/rollout/`` are unchanged, and a
  refused render leaves no output folder;
* no output holds the content of a file outside the code base (``/etc/passwd``, a secret);
* a project that fails validation is refused by ``rollout deploy --release v1 --yes`` with
  exit 2, and none of its hosts' folders (each host's ``rollout_root``) is created.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import re
import shutil
import signal
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import MINI_FILES, git
from netplan import local_address
from rollout import cli
from rollout.config.yamlfile import MAX_FILE_BYTES
from rollout.errors import Problem, printable

EXAMPLES = {
    "structure": 170,
    "text": 120,
    "unicode": 80,
    "paths": 120,
    "templates": 140,
    "inventories": 100,
    "code": 70,
    "names": 40,
}
FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
W = "{W}"
"""Placeholder for the example's temporary folder, filled in when a file is written."""
SECRET = "FUZZ-SECRET-5b1e0c9d7a"
PASSWD = "root:x:0:0"
WATCHDOG_S = 60.0
RUNS: dict[str, int] = {}
"""Examples run per test, so that each test proves it ran its share."""

# -- the base project: the mini project, with every host under the temporary folder --------


def _inventory(plant: str, base: int) -> str:
    return textwrap.dedent(f"""\
        all:
          vars:
            ansible_connection: local
          children:
            edge:
              hosts:
                {plant}-gw:
                  ansible_host: {local_address(base + 1)}
                  rollout_root: "{W}/hosts/{plant}-gw"
            ingest:
              hosts:
                {plant}-in:
                  ansible_host: {local_address(base + 2)}
                  rollout_root: "{W}/hosts/{plant}-in"
        """)


def _base_files() -> dict[str, str]:
    files = {rel: textwrap.dedent(text).lstrip("\n") for rel, text in MINI_FILES.items()}
    check = '"test -f current/config.yaml"\n'
    verify = "      - name: verify\n        type: playbook\n        playbook: playbooks/verify.yml\n"
    assert check in files["rollout.yaml"]
    files["rollout.yaml"] = files["rollout.yaml"].replace(check, check + verify, 1)
    files["playbooks/verify.yml"] = "- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.ping:\n"
    files["overlays/p1/README.md"] = "p1 runs a faster port.\n"
    files["overlays/p1/files/edge/extra/notes.txt"] = "added by p1\n"
    for i, plant in enumerate(["p1", "p2", "p3"]):
        files[f"inventories/{plant}.yml"] = _inventory(plant, i * 10)
    return files


BASE = _base_files()
YAML_FILES = sorted(rel for rel in BASE if rel.endswith((".yaml", ".yml")))
OVERLAY_TEMPLATE = "overlays/p1/files/edge/config.yaml.j2"


def fill(data: str | bytes, work: Path) -> bytes:
    """The bytes to write: the placeholder replaced, lone surrogates kept as (invalid) UTF-8."""
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
    return raw.replace(W.encode(), str(work).encode())


# -- changes: small operations on the project, shown as they are when an example fails -----


def _clear(path: Path) -> None:
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _fresh(root: Path, rel: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    _clear(path)
    return path


@dataclass(frozen=True)
class Write:
    rel: str
    data: str | bytes

    def apply(self, root: Path) -> None:
        _fresh(root, self.rel).write_bytes(fill(self.data, root.parent))


@dataclass(frozen=True)
class Symlink:
    rel: str
    target: str

    def apply(self, root: Path) -> None:
        os.symlink(fill(self.target, root.parent).decode(), _fresh(root, self.rel))


@dataclass(frozen=True)
class Fifo:
    rel: str

    def apply(self, root: Path) -> None:
        os.mkfifo(_fresh(root, self.rel))


@dataclass(frozen=True)
class Remove:
    rel: str

    def apply(self, root: Path) -> None:
        _clear(root / self.rel)


Op = Write | Symlink | Fifo | Remove


@dataclass(frozen=True)
class Change:
    """One hostile change to the mini project."""

    ops: tuple[Op, ...]
    blame: tuple[str, ...]
    """Files (or folders) of which a refusal must name at least one."""
    codebase: bool = False
    """The change is in app/: commit it as release v1 again."""
    must_fail: bool = False

    def apply(self, root: Path) -> None:
        for op in self.ops:
            op.apply(root)


def touched(*ops: Op, extra: tuple[str, ...] = (), must_fail: bool = False) -> Change:
    """A change blamed on the files it touches, and on ``extra`` (files it rightly affects)."""
    blame = tuple(dict.fromkeys([op.rel for op in ops] + list(extra)))
    return Change(tuple(ops), blame, any(op.rel.startswith("app") for op in ops), must_fail)


# -- running the CLI in-process, and watching the file system ------------------------------


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


class Hang(BaseException):
    """A command that does not answer in time (not an Exception, which the CLI would log as a crash)."""


@contextlib.contextmanager
def watchdog(seconds: float) -> Iterator[None]:
    def fire(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"no answer in {seconds:g}s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _stream() -> io.TextIOWrapper:
    # Like a real UTF-8 terminal or pipe: text that cannot be encoded is an error, not a '?'.
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict", write_through=True)


def _text(stream: io.TextIOWrapper) -> str:
    buffer = stream.buffer
    assert isinstance(buffer, io.BytesIO)
    return buffer.getvalue().decode("utf-8")


def run_cli(*args: str | Path) -> Result:
    out, err = _stream(), _stream()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), watchdog(WATCHDOG_S):
        code = cli.run([str(a) for a in args])
    return Result(code, _text(out), _text(err))


Snapshot = dict[str, tuple[int, int, int, int]]


def snapshot(top: Path, skip: set[Path]) -> Snapshot:
    """Every entry under ``top``, symlinks not followed: mode, size, mtime, inode."""
    found: Snapshot = {}
    for folder, dirs, files in os.walk(top):
        here = Path(folder)
        dirs[:] = [d for d in dirs if here / d not in skip]
        for name in dirs + files:
            st_ = (here / name).lstat()
            found[str((here / name).relative_to(top))] = (st_.st_mode, st_.st_size, st_.st_mtime_ns, st_.st_ino)
    return found


def state_dir() -> Path:
    """Where the CLI writes crash logs (exit 70)."""
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "rollout"


@dataclass(frozen=True)
class Workspace:
    """``base/pristine`` is built once; each example copies it to ``base/work/mini``."""

    base: Path

    @property
    def pristine(self) -> Path:
        return self.base / "pristine"

    @property
    def work(self) -> Path:
        return self.base / "work"

    @property
    def root(self) -> Path:
        return self.work / "mini"

    @property
    def out(self) -> Path:
        return self.work / "out"

    def build(self) -> None:
        for rel, text in BASE.items():
            Write(rel, text).apply(self.pristine)
        (self.pristine / "app/ingest/run.sh").chmod(0o755)
        self._commit(self.pristine, ".")
        git(self.pristine, "gc", "-q", "--prune=now")  # fewer files to copy for every example
        shutil.rmtree(self.pristine / ".git" / "hooks")  # git's samples, never run

    def reset(self) -> None:
        if self.work.exists():
            shutil.rmtree(self.work)
        self.work.mkdir()
        (self.work / "secret.txt").write_text(SECRET + "\n")
        shutil.copytree(self.pristine, self.root, symlinks=True)

    def commit(self) -> None:
        self._commit(self.root, "app")

    @staticmethod
    def _commit(root: Path, pathspec: str) -> None:
        if not (root / ".git").exists():
            git(root, "init", "-q", "-b", "main")
        git(root, "add", "-A", "--", pathspec)
        git(root, "commit", "-q", "--allow-empty", "-m", "release v1")
        git(root, "tag", "-f", "v1")

    def snapshot(self) -> tuple[Snapshot, Snapshot]:
        return snapshot(self.work, {self.out, self.root / ".rollout"}), snapshot(state_dir(), set())


@pytest.fixture(scope="module")
def ws() -> Iterator[Workspace]:
    workspace = Workspace(Path(tempfile.mkdtemp(prefix="rollout-fuzz-")))
    workspace.build()
    yield workspace
    shutil.rmtree(workspace.base, ignore_errors=True)


# -- the oracle ---------------------------------------------------------------------------

WHOLE_FILE = (  # problems about a YAML file as a whole: the file is the place
    "file is empty",
    "file not found",
    "does not exist",
    "file too large",
    "not UTF-8",
    "is a directory",
    "not a regular file",
    "not a folder",
    "symlink",
    "unexpected entry",
    "no plants defined",
    "invalid YAML",
    "not a playbook",
)


def _bare(file: str) -> str:
    return re.sub(r"@v1$", "", file).rstrip("/")  # a code-base file is shown as <path>@<release>


def _matches(file: str, blame: str) -> bool:
    file, blame = _bare(file), printable(blame).rstrip("/")  # messages escape names that do not print as such
    return file == blame or file.startswith(blame + "/") or blame.startswith(file + "/")


def check_problem(problem: dict[str, Any], root: Path) -> None:
    file, message = str(problem["file"]), str(problem["message"])
    assert file, problem
    if file != str(root.resolve()):  # "no rollout.yaml here or above": the folder is the place
        assert not Path(file).is_absolute() and ".." not in Path(_bare(file)).parts, f"not in the project: {problem}"
    named = re.search(r"'[^']+'|[\w.-]+: ", f"{message} {problem['found']}")  # 'name', or "host: value" pairs
    placed = problem["line"] is not None or problem["location"] or named
    # An overlay's file, a code-base file or a folder is itself the place; a YAML file needs more.
    is_place = "/files/" in file or not _bare(file).endswith((".yaml", ".yml"))
    assert placed or is_place or any(w in message for w in WHOLE_FILE), f"no place named: {problem}"


def _render(problem: dict[str, Any]) -> str:
    fields = ("file", "location", "line", "expected", "found", "message")
    return Problem(**{k: problem[k] for k in fields}).render()


def check_refusal(plain: Result, as_json: Result, change: Change, root: Path) -> None:
    problems = [json.loads(line) for line in as_json.out.splitlines()]
    assert problems and all(p["type"] == "error" for p in problems), as_json.out
    for problem in problems:
        check_problem(problem, root)
        assert _render(problem) in plain.err, f"{_render(problem)!r} not in {plain.err!r}"
    files = [str(p["file"]) for p in problems]
    assert any(_matches(f, b) for f in files for b in change.blame), f"none of {change.blame} in {files}"


CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
"""Characters that hide, recolour or reorder what a terminal shows."""


def check_clean(result: Result) -> None:
    assert result.code in (0, 2), f"exit {result.code}: {result.text}"
    if result.code:  # a refusal shows names from the input: escaped, never raw
        assert not CONTROL.search(result.text), f"control characters in {result.text!r}"
    assert "Traceback" not in result.text and "internal error" not in result.text, result.text
    assert SECRET not in result.text and PASSWD not in result.text, result.text


def check_no_leak(out: Path) -> None:
    for path in out.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            assert SECRET.encode() not in data and PASSWD.encode() not in data, f"{path} holds a file it read"


def check_deploy_refused(ws: Workspace) -> None:
    deployed = run_cli("deploy", "-C", ws.root, "--release", "v1", "--yes")
    check_clean(deployed)
    assert deployed.code == 2, f"deploy of a project that fails validation: {deployed.text}"
    assert not (ws.work / "hosts").exists(), "a host folder was created"
    assert not (ws.root / ".rollout" / "hosts").exists(), "a host folder was created"


def exercise(ws: Workspace, change: Change, test: str) -> None:
    """Apply ``change`` to a fresh copy of the mini project and hold every command to the oracle."""
    RUNS[test] = RUNS.get(test, 0) + 1
    ws.reset()
    change.apply(ws.root)
    if change.codebase:
        ws.commit()
    before = ws.snapshot()
    plain = run_cli("validate", "-C", ws.root)
    as_json = run_cli("validate", "-C", ws.root, "--json")
    rendered = run_cli("render", "-C", ws.root, "--out", ws.out)
    for result in (plain, as_json, rendered):
        check_clean(result)
    assert as_json.code == plain.code, as_json.text + plain.text
    check_no_leak(ws.out)
    if plain.code == 0:
        assert not change.must_fail, f"accepted: {change}"
        assert rendered.code == 0, f"validate passed but render failed: {rendered.text}"
    else:
        check_refusal(plain, as_json, change, ws.root)
        assert not ws.out.exists(), "a refused render wrote bundles"
        check_deploy_refused(ws)
    assert ws.snapshot() == before, "a file was written outside the output folder"


def ran(test: str) -> None:
    assert RUNS.get(test, 0) >= EXAMPLES[test], f"{test} ran {RUNS.get(test, 0)} examples"


Fuzz = Callable[[Workspace, Change], None]


def replaying(*changes: Change) -> Callable[[Fuzz], Fuzz]:
    """Changes that once found a bug, run before the generated ones on every run."""

    def decorate(test: Fuzz) -> Fuzz:
        for change in reversed(changes):
            test = example(change=change)(test)
        return test

    return decorate


# -- values: wrong types, huge, deep, odd unicode, injections ------------------------------

ODD_CHARS = st.characters(codec=None, categories=None) | st.sampled_from(
    ["\x00", "\ufeff", "\u202e", "\u200f", "\u0301", "\ud800", "\udcff", "\n", "\t", "\x1b", "'", '"', ":", "#"]
)
TOUCH = f"touch {W}/pwned"
HOSTILE_STRINGS = [
    *["", " ", "\x00", "\ufeffname", "\u202eevil\u202c", "\ud800", "a\nb", "C:\\Windows", "日本語", "🎉", "x" * 5000],
    *["../../../etc/passwd", "/etc/passwd", f"{W}/secret.txt", "~", "~nosuchuser/known_hosts", "Z\u0337a\u0338l"],
    *[f"$({TOUCH})", f"`{TOUCH}`", f"; {TOUCH} #", f"-oProxyCommand={TOUCH}", f"--upload-pack={TOUCH}"],
    *["{{ ''.__class__.__mro__ }}", "{{ cycler.__init__.__globals__.os.system('" + TOUCH + "') }}"],
    *["*", "**", "%", "150%", "-5%", "22:00", "25:61", "no", "0755", "1e999", ".nan", "9999999h", "1h30m"],
    *["HEAD", "v1", "v1~1", "winrm", "²"],
]
BIG_NUMBERS = [0, -1, 65536, 2**31, 2**63, 2**64 + 1, 10**100, -(10**30), 1e308, float("inf"), float("nan")]
KEYS = st.text(ODD_CHARS, max_size=12) | st.sampled_from(
    ["name", "port", "hosts", "vars", "children", "<<", "type", "all", "__class__", "ansible_host", "rollout_root"]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from(BIG_NUMBERS)
    | st.floats()
    | st.text(ODD_CHARS, max_size=20)
    | st.sampled_from(HOSTILE_STRINGS)
)
VALUES = st.recursive(
    SCALARS, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(KEYS, kids, max_size=3), max_leaves=8
)


def nest(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


HOSTILE_VALUES = VALUES | st.integers(20, 200).map(nest)


def dump(data: Any) -> str:
    return str(yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=1000))


def blame_for(rel: str) -> tuple[str, ...]:
    """Files a change of ``rel`` may rightly be reported in, beside ``rel`` itself."""
    if rel == "rollout.yaml":  # layers name inventory groups and code-base folders, the policy overlay files
        return ("inventories/", "overlays/", "playbooks/", "app", "plants/")
    if rel.startswith("plants/"):  # a plant names its inventory and archetype
        return ("inventories/", "overlays/", "rollout.yaml")
    if rel.startswith("overlays/"):  # values reach templates and checks
        return ("rollout.yaml", "app/")
    if rel.startswith("app/"):  # base values define what overlays may set and templates read
        return ("overlays/", "rollout.yaml", "app/")
    return ()


# -- YAML structure: one change at one place of a parsed file ------------------------------

Path_ = tuple[str | int, ...]


def _paths(node: Any, here: Path_ = ()) -> Iterator[Path_]:
    yield here
    if isinstance(node, dict):
        for key, child in node.items():
            yield from _paths(child, here + (key,))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            yield from _paths(child, here + (i,))


def _get(doc: Any, path: Path_) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def _mutate(doc: Any, path: Path_, action: str, value: Any, key: str) -> Any:
    if action == "replace" or not path:
        return value if not path else _set(doc, path, value)
    parent, last = _get(doc, path[:-1]), path[-1]
    if action == "delete":
        del parent[last]
    elif action == "rename" and isinstance(parent, dict):
        parent[key] = parent.pop(last)
    elif action == "wrap":
        parent[last] = [parent[last]] if isinstance(last, str) else {key: parent[last]}
    elif action == "add" and isinstance(parent[last], dict):
        parent[last][key] = value
    elif action == "add" and isinstance(parent[last], list):
        parent[last].append(value)
    else:
        parent[last] = value
    return doc


def _set(doc: Any, path: Path_, value: Any) -> Any:
    _get(doc, path[:-1])[path[-1]] = value
    return doc


@st.composite
def yaml_structure(draw: st.DrawFn) -> Change:
    rel = draw(st.sampled_from(YAML_FILES))
    doc = yaml.safe_load(BASE[rel])
    paths = list(_paths(doc))
    path = draw(st.sampled_from(paths))
    action = draw(st.sampled_from(["replace", "replace", "delete", "rename", "wrap", "add", "swap"]))
    value = draw(HOSTILE_VALUES)
    if action == "swap":  # another node of the same file, in the wrong place
        action, value = "replace", copy.deepcopy(_get(doc, draw(st.sampled_from(paths))))
    text = dump(_mutate(copy.deepcopy(doc), path, action, value, draw(KEYS)))
    return touched(Write(rel, text), extra=blame_for(rel))


@settings(FUZZ, max_examples=EXAMPLES["structure"])
@replaying(touched(Write("inventories/p1.yml", BASE["inventories/p1.yml"].replace("all:", '"\\r":', 1))))
@given(change=yaml_structure())
def fuzz_yaml_structure(ws: Workspace, change: Change) -> None:
    exercise(ws, change, "structure")


def test_yaml_structure_mutations(ws: Workspace) -> None:
    fuzz_yaml_structure(ws)
    ran("structure")


# -- YAML text: syntax, duplicate keys, aliases, tags, nesting, encodings, size ------------

ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)
)
MERGE_BOMB = (
    "x: {<<: [&m0 {a: 1, b: 2}, "
    + ", ".join(  # each merges the last 8 times: 8**11 keys
        f"&m{i} {{<<: [{', '.join([f'*m{i - 1}'] * 8)}]}}" for i in range(1, 12)
    )
    + "]}\n"
)
ALIAS_CHAIN = "a0: &a0 [1]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 1000))
WHOLE_DOCS = [
    *[ALIAS_BOMB, MERGE_BOMB, ALIAS_CHAIN, "a: &a\n  b: *a\n", "x: *undefined\n", "a: 1\n---\na: 2\n"],
    *["a: " + "[" * 5000 + "]" * 5000 + "\n", "a: " + "{x: " * 3000 + "1" + "}" * 3000 + "\n"],
    "".join(" " * i + f"k{i}:\n" for i in range(600)),
    *[f"--- !!python/object/apply:os.system\n- {TOUCH}\n", f"a: !!python/object/apply:os.system ['{TOUCH}']\n"],
    *["a: !!python/name:os.system\n", "a: !!binary aGVsbG8=\n", "a: !!timestamp 2001-12-14\n", "a: !custom 1\n"],
    *["a: !!set {x, y}\n", "a: !!omap [b: 1]\n", "!custom a: 1\n", "a: " + "9" * 5000 + "\n", "<<: 1\n"],
    *["a: 0x" + "f" * 5000 + "\n", "? [a, b]\n: 1\n", "? {a: 1}\n: 1\n", "1: one\n", "null: x\n", '"": x\n'],
    *["%YAML 1.1\n---\na: yes\n", "%TAG ! tag:evil.com,2000:\n---\na: !x 1\n", "a: 'unterminated\n", "\t- tab\n"],
    *["...\n", "---\n", "# only a comment\n", "[]\n", "42\n", "'just a string'\n", "a: b: c\n", "- [\n"],
    *["x" * 300_000 + ": 1\n", "a: " + "x" * 300_000 + "\n"],
]
INSERTS = ["\x00", "\ufeff", "\u202e", "\t", ":", "- ", "&a ", "*a", "!!binary ", "{", "[", "'", '"', "|", ">", "#"]


def _line_edit(draw: st.DrawFn, lines: list[str], kind: str) -> str:
    i = draw(st.integers(0, len(lines) - 1))
    if kind == "dup":
        return "".join(lines[: i + 1] + lines[i:])
    if kind == "del":
        return "".join(lines[:i] + lines[i + 1 :])
    if kind == "indent":
        pad = draw(st.sampled_from([" ", "   ", "\t", " " * 40]))
        return "".join(lines[:i] + [pad + lines[i]] + lines[i + 1 :])
    big = "anchor: &big " + dump(nest(8, "x" * 100)).strip() + "\n"  # kind == "alias"
    return big + "".join(lines) + f"zz{i}: [{', '.join(['*big'] * 50)}]\n"


@st.composite
def yaml_text(draw: st.DrawFn) -> Change:
    rel = draw(st.sampled_from(YAML_FILES))
    text = BASE[rel]
    kinds = ["doc", "doc", "dup", "del", "indent", "alias", "insert", "cut", "encoding", "huge"]
    kind = draw(st.sampled_from(kinds))
    data: str | bytes
    if kind == "huge" and not rel.startswith("app/"):  # the code base is bounded as a whole, not per file
        data = "a: 1\n" + "#" * MAX_FILE_BYTES + "\n"
    elif kind in ("doc", "huge"):
        data = draw(st.sampled_from(WHOLE_DOCS))
    elif kind == "insert":
        at = draw(st.integers(0, len(text)))
        data = text[:at] + draw(st.sampled_from(INSERTS) | st.text(ODD_CHARS, max_size=4)) + text[at:]
    elif kind == "cut":
        data = text[: draw(st.integers(0, len(text)))]
    elif kind == "encoding":
        data = draw(
            st.sampled_from(
                ["\ufeff" + text, text.replace("\n", "\r\n"), text.replace("\n", "\r"), text.encode("utf-16")]
                + [b"\xff\xfe" + text.encode(), text.encode() + b"\xed\xa0\x80"]
            )
        )
    else:
        data = _line_edit(draw, text.splitlines(keepends=True), kind)
    return touched(Write(rel, data), extra=blame_for(rel))


@settings(FUZZ, max_examples=EXAMPLES["text"])
@replaying(
    touched(Write("plants/p1.yaml", "a: " + "[" * 50_000 + "]" * 50_000 + "\n"), extra=blame_for("plants/")),
    touched(Write("inventories/p1.yml", "a: 0x" + "f" * 5000 + "\n")),
    touched(Write("plants/p2.yaml", "a: " + "9" * 5000 + "\n"), extra=blame_for("plants/")),
    touched(Write("rollout.yaml", "!custom a: 1\n"), extra=blame_for("rollout.yaml")),
    touched(Write("app/values.yaml", MERGE_BOMB), extra=blame_for("app/")),
    touched(Write("plants/p3.yaml", ALIAS_CHAIN), extra=blame_for("plants/")),
)
@given(change=yaml_text())
def fuzz_yaml_text(ws: Workspace, change: Change) -> None:
    exercise(ws, change, "text")


def test_yaml_text_mutations(ws: Workspace) -> None:
    fuzz_yaml_text(ws)
    ran("text")


# -- unicode: odd names of plants, overlays and files; odd keys and values ---------------

REAL_NAMES = ("p1", "p2", "p3", "small", "large", "_archetypes", "README.md")
ODD_NAMES = ["ü", "\u202ep1", "p1\u200f", "P1", "p 1", "-rf", ".hidden", "p1\u0301", "ｐ１", "🎉", "a" * 200]
ODD_NAMES += ["bad\udcff", "\udc80", "nul\x01", "new\nline", "$(touch pwned)"]  # \udcXX: a byte that is not UTF-8


def _file_name(name: str) -> str:
    """``name`` as a file name: no '/' or NUL; surrogates only as the escapes of undecodable bytes."""
    name = "".join("_" if c in "/\x00" or ("\ud800" <= c < "\udc80" or "\udcff" < c <= "\udfff") else c for c in name)
    return f"odd-{name}" if name in (".", "..", *REAL_NAMES) else name


@st.composite
def unicode_change(draw: st.DrawFn) -> Change:
    name = _file_name(draw(st.sampled_from(ODD_NAMES) | st.text(ODD_CHARS, min_size=1, max_size=8)))
    where = draw(st.sampled_from(["plant", "overlay", "archetype", "file", "key", "value", "template"]))
    if where == "plant":
        return touched(Write(f"plants/{name}.yaml", BASE["plants/p2.yaml"]), extra=("inventories/",))
    if where == "overlay":
        return touched(Write(f"overlays/{name}/values.yaml", "port: 1\n"), must_fail=True)
    if where == "archetype":
        return touched(Write(f"overlays/_archetypes/{name}/values.yaml", "lines: 1\n"), must_fail=True)
    if where == "file":
        return touched(Write(f"overlays/p1/files/edge/extra/{name}", name))
    if where == "key":
        rel = draw(st.sampled_from(YAML_FILES))
        return touched(Write(rel, BASE[rel] + dump({name: 1})), extra=blame_for(rel))
    if where == "value":
        return touched(Write("overlays/p1/values.yaml", dump({"port": 9000, "sensors": {name: name}})))
    return touched(Write(OVERLAY_TEMPLATE, "port: {{ values.port }}\nname: " + name + "\n"), extra=("app/",))


@settings(FUZZ, max_examples=EXAMPLES["unicode"])
@replaying(
    touched(Write("overlays/p1/files/edge/extra/bad\udcff", "x")),
    touched(Write("plants/bad\udcff.yaml", BASE["plants/p2.yaml"])),
    touched(Write("plants/\u202ep1.yaml", BASE["plants/p2.yaml"])),
    touched(Write("plants/\r.yaml", BASE["plants/p2.yaml"])),
)
@given(change=unicode_change())
def fuzz_unicode(ws: Workspace, change: Change) -> None:
    exercise(ws, change, "unicode")


def test_unicode_names_and_bytes(ws: Workspace) -> None:
    fuzz_unicode(ws)
    ran("unicode")


# -- overlays and paths: symlinks, special files, other plants, forbidden files -----------

LINK_TARGETS = ["/etc/passwd", f"{W}/secret.txt", "../../../../rollout.yaml", "/dev/zero", "/etc", W, "nowhere"]
OVERLAY_FILES = [  # (path under files/, refused whoever's overlay holds it)
    *[("edge/config.yaml.j2", False), ("edge/extra/new.txt", False), ("edge/extra/_partial.j2", False)],
    *[("edge/extra/..x", False), ("edge/extra/ .j2", False), ("edge/extra/$(touch pwned)", False)],
    *[("edge/static.txt", True), ("edge/extra/sub/x", True), ("edge/new.j2", True), ("ingest/app.conf.j2", True)],
    *[("ingest/run.sh", True), ("values.yaml", True), ("docs/x.txt", True), (".git/config", True)],
]
OVERLAY_LINKS = ["overlays/p1/files/edge/extra/x", "overlays/p1/files/edge/config.yaml.j2", "overlays/p1/files/edge"]
OVERLAY_LINKS += ["overlays/p1/files", "overlays/p1/values.yaml", "overlays/p1/README.md", "overlays/p2"]
OVERLAY_LINKS += ["overlays/_archetypes", "overlays/_archetypes/large"]
FIFOS = ["overlays/p1/files/edge/extra/fifo", "overlays/p1/values.yaml", "overlays/p1/README.md", "overlays/p1/files"]
FIFOS += ["plants/p9.yaml", "inventories/p2.yml", "playbooks/verify.yml"]
PROJECT_LINKS = ["plants/p2.yaml", "inventories/p2.yml", "playbooks/verify.yml", "plants/p9.yaml"]
OVERLAY_FOLDERS = ["p2", "p3", "small", "large", "p9", "_archetypes/p1", "_archetypes/huge", "x.y"]
POLICY = ["../*", "/etc/*", "**", "*", "edge/**", "", ".", "./edge/*", "edge/../ingest/*", "\x00", "[", "a" * 600]
PATH_SETTINGS = [
    ("hosts_dir", ["../x", "/tmp", ".", "plants", "..", "a/../../b", ""]),
    ("codebase.repo", ["/", "..", W, "../../", "\x00", "~", "~nosuchuser", "-oops", "app", "nowhere"]),
    ("codebase.path", ["..", "/etc", "app/../..", ".git", "app/edge/static.txt", "app/edge", "ü", "\x00"]),
    ("codebase.values", ["../rollout.yaml", "/etc/passwd", "edge/static.txt", "edge", "none.yaml", "ingest/run.sh"]),
    ("ssh.known_hosts", ["~nosuchuser/kh", "\x00", "/dev/zero", "~", f"{W}/secret.txt"]),
]
PLANT_PATHS = ["../secret.txt", "/etc/passwd", "inventories/../../x", "rollout.yaml", "playbooks/verify.yml"]
PLANT_PATHS += ["inventories", *LINK_TARGETS]
PLAYBOOKS = ["playbooks/../rollout.yaml", "/etc/passwd", "playbooks", "playbooks/none.yml", "plants/p1.yaml"]
PLAYBOOKS += ["playbooks/", *LINK_TARGETS]


def _with_setting(doc: dict[str, Any], dotted: str, value: Any) -> str:
    here = doc
    *parents, last = dotted.split(".")
    for part in parents:
        here = here.setdefault(part, {})
    here[last] = value
    return dump(doc)


def _config_change(draw: st.DrawFn, kind: str) -> Change:
    """Paths in rollout.yaml and plants: the policy, settings, a plant's inventory, playbooks."""
    doc = yaml.safe_load(BASE["rollout.yaml"])
    if kind == "policy":
        which = draw(st.sampled_from(["may_replace", "may_add"]))
        text = _with_setting(doc, f"overlays.{which}", draw(st.lists(st.sampled_from(POLICY), min_size=1, max_size=3)))
        added = Write(f"overlays/p1/files/{draw(st.sampled_from(OVERLAY_FILES))[0]}", "x\n")
        return touched(Write("rollout.yaml", text), added, extra=("app/", "inventories/", "overlays/"))
    if kind == "setting":
        key, choices = draw(st.sampled_from(PATH_SETTINGS))
        return touched(Write("rollout.yaml", _with_setting(doc, key, draw(st.sampled_from(choices)))), extra=("app",))
    if kind == "plant-path":
        plant = yaml.safe_load(BASE["plants/p2.yaml"])
        plant["inventory"] = target = draw(st.sampled_from(PLANT_PATHS))
        return touched(Write("plants/p2.yaml", dump(plant)), extra=(target, "rollout.yaml"))
    layer = doc["layers"][draw(st.integers(0, 1))]
    layer[draw(st.sampled_from(["activation", "restart", "stop"]))] = {"playbook": draw(st.sampled_from(PLAYBOOKS))}
    return touched(Write("rollout.yaml", dump(doc)), extra=("playbooks/",))


@st.composite
def path_change(draw: st.DrawFn) -> Change:
    kinds = ["file", "link", "project-link", "fifo", "folder", "policy", "setting", "plant-path", "playbook"]
    kind = draw(st.sampled_from(kinds))
    if kind == "file":
        path, forbidden = draw(st.sampled_from(OVERLAY_FILES))
        owner = draw(st.sampled_from(["p1", "p2", "_archetypes/small"]))
        return touched(Write(f"overlays/{owner}/files/{path}", "x: 1\n"), must_fail=forbidden, extra=("app/",))
    if kind == "link":
        target = draw(st.sampled_from([*LINK_TARGETS, "../plants", "../p1"]))
        return touched(Symlink(draw(st.sampled_from(OVERLAY_LINKS)), target), must_fail=True)
    if kind == "project-link":  # the project's own YAML files may be links, but only to what they should hold
        link = Symlink(draw(st.sampled_from(PROJECT_LINKS)), draw(st.sampled_from([*LINK_TARGETS, "/dev/null"])))
        return touched(link, must_fail=True, extra=("rollout.yaml",))  # where the playbook is named
    if kind == "fifo":
        return touched(Fifo(draw(st.sampled_from(FIFOS))), must_fail=True, extra=("rollout.yaml",))
    if kind == "folder":
        content = draw(st.sampled_from(["values.yaml", "files/edge/config.yaml.j2", "README.md", "junk"]))
        return touched(
            Write(f"overlays/{draw(st.sampled_from(OVERLAY_FOLDERS))}/{content}", "port: 1\n"), extra=("app/",)
        )
    return _config_change(draw, kind)


@settings(FUZZ, max_examples=EXAMPLES["paths"])
@replaying(
    touched(Fifo("plants/p9.yaml"), must_fail=True),
    touched(Symlink("inventories/p2.yml", "/dev/zero"), must_fail=True),
    touched(Write("plants/p2.yaml", BASE["plants/p2.yaml"] + "inventory: inventories\n"), must_fail=True),
)
@given(change=path_change())
def fuzz_paths(ws: Workspace, change: Change) -> None:
    exercise(ws, change, "paths")


def test_overlay_and_path_tricks(ws: Workspace) -> None:
    fuzz_paths(ws)
    ran("paths")


# -- templates: sandbox escapes, file reads, bombs; in overlays, the code base and checks ---

ESCAPES = [  # refused wherever they are: no Python internals, no file outside the code base, no bombs
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__.__mro__ }}",
    "{{ cycler.__init__.__globals__.os.system('" + TOUCH + "') }}",
    "{{ joiner.__init__.__globals__.os.popen('" + TOUCH + "').read() }}",
    "{{ namespace.__init__.__globals__.os.system('" + TOUCH + "') }}",
    "{{ lipsum.__globals__['os'].system('" + TOUCH + "') }}",
    "{{ self._TemplateReference__context }}",
    "{{ self._TemplateReference__context.environment.__class__ }}",
    "{{ self.__init__.__globals__ }}",
    "{{ values.__class__.__init__.__globals__ }}",
    "{{ ()|attr('\\x5f\\x5fclass\\x5f\\x5f') }}",
    "{{ '{0.__class__.__mro__}'.format('') }}",
    "{{ '%s' % ''.__class__ }}",
    "{{ dict.__subclasses__() }}",
    "{{ range.__self__ }}",
    "{{ fail.__globals__['jinja2'] }}",
    "{% set ns = namespace() %}{% set ns.x = ns.__class__ %}{{ ns.x }}",
    "{% include '/etc/passwd' %}",
    "{% include '" + W + "/secret.txt' %}",
    "{% include '../../../secret.txt' %}",
    "{% include '../../../../../../etc/passwd' %}",
    "{% import '" + W + "/secret.txt' as s %}{{ s }}",
    "{% from '/etc/passwd' import x %}{{ x }}",
    "{% extends '" + W + "/secret.txt' %}",
    "{{ range(10**9)|list|length }}",
    "{% for i in range(10**9) %}{% endfor %}",
    "{{ 'x' * 10**9 }}",
    "{{ [1] * 10**9 }}",
    "{{ 'x' * 1000 * 1000 * 1000 }}",
    "{{ 10 ** 100000 }}",
    "{{ 2 ** 4000 }}",
    "{{ lipsum(100000) }}",
    "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    "{% macro f(n) %}{{ f(n) ~ f(n) }}{% endmacro %}{{ f(1) }}",
    *["{{ fail('refused on purpose') }}", "{{ config }}", "{{ values.nothing.deeper }}", "{{ 1/0 }}"],
    *["{% if %}", "{{", "{% for x in values %}", "{% raw %}", "{{ values.port + 'x' }}"],
]
MUTATIONS = [  # refused by the immutable sandbox (overlays' plants, checks); the code base has its own copy
    *["{{ values.update({'port': 1}) }}", "{{ values.sensors.setdefault('a', 1) }}"],
    *["{{ hosts.append(1) }}", "{{ plant.pop('name') }}"],
]
HARMLESS = [
    "{% include 'edge/config.yaml.j2' %}",  # endless only where it replaces edge/config.yaml.j2 itself
    *["{{ values.port }}", "{{ values | to_json }}", "{{ values | to_yaml }}", "{{ plant.name | quote }}"],
    *["{{ hosts | map(attribute='address') | join(',') }}", "{% for g in groups %}{{ g }} {% endfor %}"],
    *["{% set ns = namespace(n=0) %}{% set ns.n = ns.n + 1 %}{{ ns.n }}", "{{ cycler('a').next() }}{{ joiner()() }}"],
    *["{{ 'x' * 100 }}", "{{ range(10) | sum }}", "\ufeff{{ values.port }}", "{{ '\u202e' }} \x00 日本"],
]
PLACES = {  # where a template goes; a partial is included by the layer's template beside it
    "overlay-replace": (OVERLAY_TEMPLATE, None),
    "overlay-add": ("overlays/p1/files/edge/extra/evil.yaml.j2", None),
    "overlay-partial": ("overlays/p1/files/edge/extra/_evil.j2", (OVERLAY_TEMPLATE, "edge/extra/_evil.j2")),
    "archetype": ("overlays/_archetypes/small/files/edge/config.yaml.j2", None),
    "codebase": ("app/edge/config.yaml.j2", None),
    "codebase-other": ("app/ingest/app.conf.j2", None),
    "codebase-partial": ("app/ingest/_evil.j2", ("app/ingest/app.conf.j2", "ingest/_evil.j2")),
}
CHECK_FIELDS = [(0, "checks", 0, "command"), (1, "checks", 0, "url"), (1, "checks", 1, "port")]
CHECK_FIELDS += [(1, "restart", "command")]


EMPTY = ["{{ '' }}", "{% raw %}", "{{ '  ' }}", "{% if false %}x{% endif %}"]  # a check of nothing passes always
BAD_PORTS = ["{{ '²' }}", "{{ values.port }}x", "{{ 70000 }}", "{{ -1 }}", "0", "{{ values.kpi }}"]


def _in_checks(draw: st.DrawFn, payload: str, hostile: bool) -> Change:
    doc = yaml.safe_load(BASE["rollout.yaml"])
    i, *path = field = draw(st.sampled_from(CHECK_FIELDS))
    if draw(st.integers(0, 3)) == 0:  # or a field that renders to nothing, or to no port
        payload, hostile = draw(st.sampled_from(EMPTY + (BAD_PORTS if field == CHECK_FIELDS[2] else []))), True
    _set(doc["layers"][i], tuple(path), payload)
    return touched(Write("rollout.yaml", dump(doc)), must_fail=hostile, extra=("app/",))


def _in_template(draw: st.DrawFn, place: str, payload: str, hostile: bool) -> Change:
    rel, includer = PLACES[place]
    before = draw(st.lists(st.sampled_from(["a: 1", "port: {{ values.port }}", "{# c #}", ""]), max_size=3))
    ops: list[Op] = [Write(rel, "\n".join([*before, payload, ""]))]
    if includer is not None:
        ops.append(Write(includer[0], f"port: {{{{ values.port }}}}\n{{% include '{includer[1]}' %}}\n"))
    return touched(*ops, extra=("app/", "overlays/", "rollout.yaml"), must_fail=hostile)


@st.composite
def template_change(draw: st.DrawFn) -> Change:
    kind = draw(st.sampled_from(["escape", "escape", "escape", "mutation", "harmless"]))
    payload = draw(st.sampled_from({"escape": ESCAPES, "mutation": MUTATIONS, "harmless": HARMLESS}[kind]))
    place = draw(st.sampled_from([*PLACES, "checks"]))
    hostile = kind == "escape" or (kind == "mutation" and not place.startswith("codebase"))
    if place == "checks":
        return _in_checks(draw, payload, hostile)
    return _in_template(draw, place, payload, hostile)


@settings(FUZZ, max_examples=EXAMPLES["templates"])
@replaying(
    touched(
        Write("app/edge/config.yaml.j2", "{{ cycler.__init__.__globals__.os.system('" + TOUCH + "') }}"), must_fail=True
    ),
    touched(Write("app/ingest/app.conf.j2", "{% for i in range(10**9) %}{% endfor %}\n"), must_fail=True),
    touched(Write(OVERLAY_TEMPLATE, "{{ lipsum(100000) }}\n"), must_fail=True),
    touched(
        Write("rollout.yaml", BASE["rollout.yaml"].replace('"test -f current/config.yaml"', "'{% raw %}'")),
        must_fail=True,
    ),
    touched(
        Write("rollout.yaml", BASE["rollout.yaml"].replace('port: "{{ values.port }}"', "port: \"{{ '²' }}\"")),
        must_fail=True,
    ),
)
@given(change=template_change())
def fuzz_templates(ws: Workspace, change: Change) -> None:
    exercise(ws, change, "templates")


def test_hostile_templates(ws: Workspace) -> None:
    fuzz_templates(ws)
    ran("templates")


# -- inventories: bad addresses, ports, connections, names, groups, injections -------------

HOST_VARS = ["ansible_host", "ansible_port", "ansible_connection", "ansible_user", "rollout_root", "zone"]
HOST_VALUES = st.sampled_from(
    [*HOSTILE_STRINGS, *BIG_NUMBERS, "999.1.1.1", "::1::", "[::1]", "host name", "-oProxyCommand=x", "relative/root"]
    + ["/", "ssh", "local", "docker", "LOCAL", None, True, [], {"a": 1}, 22]
)
UNREACHABLE = {  # values no host can be reached with: validate must refuse them
    "ansible_port": ["abc", 0, 65536, 10**30, -1, True, "22x", "²", 1.5, [22], None],
    "ansible_host": ["", "host name", f"-oProxyCommand={TOUCH}", "a\nb", "x" * 300, 5, "\u202ehost"],
    "rollout_root": ["relative/root", "", f"$({TOUCH})", 5, W + "/../x", W + "/\x00", ["/x"]],
}
HOST_NAMES = ["bad host", "-rf", "h[1:3]", "ü", "a" * 300, "p1-gw", "p2-in", "all", "x.y", "$(touch pwned)", "1"]
GROUP_NAMES = ["unknown", "ingest", "edge", "all", "1bad", "bad-name", "ü", "children", "hosts"]


def _hosts(inv: dict[str, Any]) -> list[dict[str, Any]]:
    groups = inv["all"]["children"]
    return [groups[g]["hosts"][h] for g in ("edge", "ingest") for h in groups[g]["hosts"]]


def _inventory_edit(draw: st.DrawFn, inv: dict[str, Any], plant: str, kind: str) -> None:
    children = inv["all"]["children"]
    if kind == "var":
        draw(st.sampled_from(_hosts(inv)))[draw(st.sampled_from(HOST_VARS))] = draw(HOST_VALUES)
    elif kind == "group-var":
        group = draw(st.sampled_from([inv["all"], children["edge"], children["ingest"]]))
        group.setdefault("vars", {})[draw(st.sampled_from(HOST_VARS))] = draw(HOST_VALUES)
    elif kind == "host":
        group = children[draw(st.sampled_from(["edge", "ingest"]))]
        group["hosts"][draw(st.sampled_from(HOST_NAMES))] = {"ansible_host": draw(HOST_VALUES)}
    elif kind == "group":  # a host in two groups, one maybe unknown, and a stray host with a relative root
        children[draw(st.sampled_from(GROUP_NAMES))] = {"hosts": {f"{plant}-gw": None, "stray": {"rollout_root": "x"}}}
    elif kind == "empty":
        children["ingest"]["hosts"] = {}
    else:  # groups that contain each other
        children["edge"]["children"] = {"ingest": None}
        children["ingest"]["children"] = {"edge": None}


@st.composite
def inventory_change(draw: st.DrawFn) -> Change:
    plant = draw(st.sampled_from(["p1", "p2", "p3"]))
    rel = f"inventories/{plant}.yml"
    inv = yaml.safe_load(BASE[rel])
    kind = draw(st.sampled_from(["var", "var", "unreachable", "group-var", "host", "group", "dup", "empty", "cycle"]))
    if kind == "unreachable":
        var = draw(st.sampled_from(sorted(UNREACHABLE)))
        draw(st.sampled_from(_hosts(inv)))[var] = draw(st.sampled_from(UNREACHABLE[var]))
        return touched(Write(rel, dump(inv)), must_fail=True)
    if kind == "dup":  # the same host twice in one group: a duplicate key
        dup = f"      hosts:\n        {plant}-gw: {{ansible_connection: ssh}}\n"
        return touched(Write(rel, BASE[rel].replace("      hosts:\n", dup, 1)), must_fail=True)
    _inventory_edit(draw, inv, plant, kind)
    return touched(Write(rel, dump(inv)), extra=("rollout.yaml",))


@settings(FUZZ, max_examples=EXAMPLES["inventories"])
@replaying(
    touched(
        Write("inventories/p2.yml", BASE["inventories/p2.yml"].replace(": local", ": local\n    ansible_port: abc")),
        must_fail=True,
    ),
    touched(
        Write("inventories/p2.yml", BASE["inventories/p2.yml"].replace('"{W}/hosts/p2-gw"', "rel/root")), must_fail=True
    ),
    touched(Write("inventories/p2.yml", BASE["inventories/p2.yml"].replace(": local", ': "\\r"')), must_fail=True),
    touched(Write("inventories/p2.yml", BASE["inventories/p2.yml"].replace(": local", ': "\\e[31m"')), must_fail=True),
)
@given(change=inventory_change())
def fuzz_inventories(ws: Workspace, change: Change) -> None:
    exercise(ws, change, "inventories")


def test_bad_inventories(ws: Workspace) -> None:
    fuzz_inventories(ws)
    ran("inventories")


# -- the code base: files git keeps that rollout must refuse or render ---------------------

BINARIES = [b"\xff\xfe\x00", "{{ values.port }}".encode("utf-16"), b"\x80abc", b"\xed\xa0\x80"]  # not UTF-8
CODE_PARTS = ["app/edge", "app/ingest", "app/values.yaml", "app/edge/config.yaml.j2", "app"]


@st.composite
def code_change(draw: st.DrawFn) -> Change:
    kind = draw(st.sampled_from(["name", "name", "name", "link", "clash", "binary", "values", "remove", "big"]))
    if kind == "name":
        name = _file_name(draw(st.sampled_from(ODD_NAMES))) + draw(st.sampled_from(["", ".j2"]))
        return touched(Write(f"app/edge/{name}", "port: {{ values.port }}\n"), extra=("overlays/",))
    if kind == "link":
        link = Symlink(
            draw(st.sampled_from(["app/edge/link", "app/edge/link.j2"])), draw(st.sampled_from(LINK_TARGETS))
        )
        return touched(link, must_fail=True)
    if kind == "clash":  # static.txt.j2 renders to static.txt, which is there already
        return touched(Write("app/edge/static.txt.j2", "x\n"), must_fail=True)
    if kind == "binary":
        rel = draw(st.sampled_from(["app/edge/config.yaml.j2", "app/values.yaml"]))
        return touched(Write(rel, draw(st.sampled_from(BINARIES))), must_fail=True)
    if kind == "values":
        return touched(Write("app/values.yaml", draw(st.sampled_from(WHOLE_DOCS))), extra=("overlays/", "rollout.yaml"))
    if kind == "remove":
        return touched(Remove(draw(st.sampled_from(CODE_PARTS))), extra=("overlays/", "rollout.yaml"))
    return touched(Write("app/edge/big.bin", b"\x00" * draw(st.sampled_from([1, 1_000_000, 3_000_000]))))


@settings(FUZZ, max_examples=EXAMPLES["code"])
@replaying(touched(Write("app/edge/bad\udcff.j2", "x\n"), must_fail=True))
@given(change=code_change())
def fuzz_code(ws: Workspace, change: Change) -> None:
    exercise(ws, change, "code")


def test_codebase_mutations(ws: Workspace) -> None:
    fuzz_code(ws)
    ran("code")


# -- file names: control, bidi and invisible characters; names that are one under NFC ------

HIDDEN = [  # no file name on a plant's host may hold these (Cc, Cf, Zl, Zp)
    *["\n", "\r", "\t", "\x1b", "\x7f", "\x85", "\x01", "\u2028", "\u2029"],
    *["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"],
    *["\u200e", "\u200f", "\u061c", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"],
]
STEMS = ["config", "überblick-ñ", "日本語", "🎉", "run", "a b"]
SUFFIXES = ["", ".txt", ".j2", ".json.j2", ".sh"]
NAME_FOLDERS = [  # where a name may be added: the policy lets p1 and its archetype add under edge/extra
    "overlays/p1/files/edge/extra",
    "overlays/_archetypes/small/files/edge/extra",
    "app/edge",
    "app/ingest",
]
COMPOSED = [  # (NFC, another form of it)
    ("caf\u00e9", "cafe\u0301"),
    ("\u00fcberblick", "u\u0308berblick"),
    ("\uac00", "\u1100\u1161"),
    ("\u00c5", "\u212b"),  # the Angstrom sign: its NFC is the letter
]


@st.composite
def hidden_name(draw: st.DrawFn) -> str:
    stem = draw(st.sampled_from(STEMS))
    at = draw(st.integers(0, len(stem)))
    return stem[:at] + draw(st.sampled_from(HIDDEN)) + stem[at:] + draw(st.sampled_from(SUFFIXES))


def _pair_paths(draw: st.DrawFn, first: str, second: str) -> tuple[str, str]:
    kind = draw(st.sampled_from(["same-folder", "folders", "codebase-overlay", "archetype-plant", "rendered"]))
    if kind == "same-folder":
        folder = draw(st.sampled_from(NAME_FOLDERS))
        return f"{folder}/{first}.txt", f"{folder}/{second}.txt"
    if kind == "folders":  # two folders that would be one: each holds a file
        folder = draw(st.sampled_from(NAME_FOLDERS))
        return f"{folder}/{first}/a.txt", f"{folder}/{second}/b.txt"
    if kind == "codebase-overlay":  # the overlay adds what looks like, and on macOS is, a file of the code base
        overlay = draw(st.sampled_from(NAME_FOLDERS[:2]))
        return f"app/edge/extra/{first}.txt", f"{overlay}/{second}.txt"
    if kind == "archetype-plant":
        return f"{NAME_FOLDERS[1]}/{first}.txt", f"{NAME_FOLDERS[0]}/{second}.txt"
    return f"app/edge/{first}.txt.j2", f"app/edge/{second}.txt"  # rendered, both are <name>.txt


@st.composite
def name_change(draw: st.DrawFn) -> Change:
    """A file (or the folder of one) with a hidden character, or two names equal under NFC."""
    if draw(st.booleans()):
        name, folder = draw(hidden_name()), draw(st.sampled_from(NAME_FOLDERS))
        rel = f"{folder}/{name}/x.txt" if draw(st.integers(0, 3)) == 0 else f"{folder}/{name}"
        return touched(Write(rel, "port: {{ values.port }}\n"), must_fail=True)
    pair = draw(st.sampled_from(COMPOSED))
    first, second = pair if draw(st.booleans()) else pair[::-1]
    paths = _pair_paths(draw, first, second)
    return touched(*(Write(rel, f"{rel}\n") for rel in paths), must_fail=True)


@settings(FUZZ, max_examples=EXAMPLES["names"])
@replaying(
    touched(Write("overlays/p1/files/edge/extra/invoice\u202etxt.exe", "x\n"), must_fail=True),
    touched(Write("app/edge/new\nline.txt", "x\n"), must_fail=True),
    touched(
        Write("overlays/p1/files/edge/extra/caf\u00e9.json", "1\n"),
        Write("app/edge/extra/cafe\u0301.json", "2\n"),
        must_fail=True,
    ),
)
@given(change=name_change())
def fuzz_names(ws: Workspace, change: Change) -> None:
    exercise(ws, change, "names")


def test_hostile_file_names(ws: Workspace) -> None:
    fuzz_names(ws)
    ran("names")


# -- the harness itself ---------------------------------------------------------------------


def test_at_least_500_projects() -> None:
    assert sum(EXAMPLES.values()) >= 500


def test_pristine_project_passes_and_the_oracle_sees_writes(ws: Workspace) -> None:
    exercise(ws, Change((), ("rollout.yaml",)), "pristine")
    bundles = {p.relative_to(ws.out).as_posix() for p in ws.out.rglob("manifest.json")}
    assert bundles == {f"{p}/{layer}/manifest.json" for p in ("p1", "p2", "p3") for layer in ("edge", "ingest")}
    before = ws.snapshot()
    (ws.work / "pwned").write_text("x")
    assert ws.snapshot() != before


def test_every_host_lives_under_the_temporary_folder(ws: Workspace) -> None:
    ws.reset()
    inventories = [yaml.safe_load(fill(BASE[f"inventories/{p}.yml"], ws.work)) for p in ("p1", "p2", "p3")]
    roots = [host["rollout_root"] for inv in inventories for host in _hosts(inv)]
    assert roots == [f"{ws.work}/hosts/{p}-{h}" for p in ("p1", "p2", "p3") for h in ("gw", "in")]


def test_a_refusal_must_name_the_changed_file(ws: Workspace) -> None:
    change = touched(Write("plants/p2.yaml", "archetype: [x]\n"))
    with pytest.raises(AssertionError, match="none of"):
        exercise(ws, Change(change.ops, ("inventories/p2.yml",)), "harness")
    exercise(ws, change, "harness")


def test_an_accepted_hostile_change_fails_the_suite(ws: Workspace) -> None:
    with pytest.raises(AssertionError, match="accepted"):
        exercise(ws, Change((), ("rollout.yaml",), must_fail=True), "harness")


def test_hang_is_not_an_exception() -> None:
    assert not issubclass(Hang, Exception)
    with pytest.raises(Hang), watchdog(0.05):
        signal.pause()
