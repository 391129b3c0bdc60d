"""File names: hostile ones are refused wherever they enter, ordinary non-ASCII ones deploy.

The rule itself is table-tested (``rollout.config.filenames``, pure); then real projects in real
git repositories: names that only git's index or a crafted tree can hold, the ``render``
and ``deploy`` verbs refusing (nothing written, no host folder), and names in other
scripts that validate, render and deploy to a local host.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import GIT_ENV, MiniProject, Result, commit_all, git, make_mini
from rollout.config.filenames import name_problem, name_problems, nfc_collisions

NFC, NFD = "caf\u00e9.json", "cafe\u0301.json"

REFUSED = [  # (name, what the reason must say)
    ("new\nline.txt", "U+000A"),
    ("tab\there", "U+0009"),
    ("\x1b[31mred", "U+001B"),
    ("del\x7f", "U+007F"),
    ("c1\x85", "U+0085"),
    ("invoice\u202etxt.exe", "U+202E"),
    *[(f"bidi{c}x", f"U+{ord(c):04X}") for c in "\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069\u200e\u200f\u061c"],
    ("zero\u200bwidth", "U+200B"),
    ("join\u200dme", "U+200D"),
    ("\ufeffbom", "U+FEFF"),
    ("soft\u00adhyphen", "U+00AD"),
    ("line\u2028sep", "U+2028"),
    ("para\u2029sep", "U+2029"),
    ("bad\udcff", "not UTF-8"),
    ("..", "'..'"),
    (".", "'.'"),
    ("a//b", "empty component"),
    ("x" * 256, "255 bytes"),
    ("ü" * 128, "255 bytes"),
    ("edge/ok/\u202eevil/deeper.txt", "U+202E"),
]
KEPT = [
    "überblick-ñ.json.j2",
    "日本語.txt",
    "🎉.txt",
    "Ünïcødé 計画.txt",
    "файл.conf",
    "\u05de\u05e1\u05de\u05da.txt",  # right-to-left letters are letters, not controls
    NFD,  # alone, as macOS stores names
    "ｐ１",
    "Café.json",
    "a" * 255,
    "ü" * 127,
    ".hidden",
    "..x",
    " .j2",
    "edge/extra/$(touch pwned)",
]


@pytest.mark.parametrize(("name", "reason"), REFUSED, ids=[ascii(n)[:24] for n, _ in REFUSED])
def test_hostile_names_are_refused(name: str, reason: str) -> None:
    found = name_problem(name)
    assert found is not None, f"{name!r} accepted"
    assert reason in found, f"{name!r}: {found}"


@pytest.mark.parametrize("name", KEPT, ids=[ascii(n)[:24] for n in KEPT])
def test_ordinary_names_are_kept(name: str) -> None:
    assert name_problem(name) is None, f"{name!r} refused: {name_problem(name)}"


def test_nfc_collisions_of_files_and_folders() -> None:
    assert nfc_collisions([NFC, "Caf\u00e9.json", "x/" + NFD]) == [], "case and other folders are no clash"
    (file,) = nfc_collisions([f"edge/{NFC}", f"edge/{NFD}"])
    assert {file.kept, file.clashing} == {f"edge/{NFC}", f"edge/{NFD}"}, file
    folders = nfc_collisions(["caf\u00e9/a", "cafe\u0301/b", "cafe\u0301/c"])
    assert [(c.kept, c.clashing) for c in folders] == [("cafe\u0301", "caf\u00e9")], "one clash per folder"


def test_a_clash_names_both_files_distinguishably() -> None:
    problems = name_problems({f"edge/{NFC}": f"o/{NFC}", f"edge/{NFD}": f"o/{NFD}"}, "overlay o")
    assert len(problems) == 1, problems
    text = problems[0].render()
    assert "caf\\xe9.json" in text and "cafe\\u0301.json" in text and "overlay o" in text, text


# -- real projects --------------------------------------------------------------------------------


def _local_hosts(project: MiniProject, roots: Path) -> None:
    """Every host of the mini project a folder under ``roots``."""
    for plant in ("p1", "p2", "p3"):
        inventory = project.root / f"inventories/{plant}.yml"
        text = inventory.read_text()
        for host in ("gw", "in"):
            entry = f"{plant}-{host}:\n"
            text = text.replace(entry, f"{entry}          rollout_root: {roots / f'{plant}-{host}'}\n", 1)
        inventory.write_text(text)


def _index_file(root: Path, rel: str, data: bytes) -> None:
    """Add ``rel`` through git's index alone, as a repository made elsewhere would hold it."""
    env = {**os.environ, **GIT_ENV}
    blob = subprocess.run(
        ["git", "hash-object", "-w", "--stdin"], cwd=root, env=env, input=data, capture_output=True, check=True
    )
    info = f"100644,{blob.stdout.decode().strip()},{rel}"
    subprocess.run(["git", "update-index", "--add", "--cacheinfo", info], cwd=root, env=env, check=True)


def _crafted_entry(root: Path, folder: str, name: bytes) -> None:
    """Tag as v1 a commit whose ``folder`` holds an entry ``name`` that git's index refuses ('..')."""
    env = {**os.environ, **GIT_ENV}

    def run(*args: str, data: bytes | None = None) -> bytes:
        return subprocess.run(["git", *args], cwd=root, env=env, input=data, capture_output=True, check=True).stdout

    sha = run("hash-object", "-w", "--stdin", data=b"crafted\n").strip()
    entry = b"100644 blob " + sha + b"\t" + name
    parts = folder.split("/")
    for depth in range(len(parts), -1, -1):
        here = "/".join(parts[:depth])
        listing = [e for e in run("ls-tree", "-z", f"HEAD:{here}").split(b"\0") if e]
        if depth < len(parts):  # the changed child folder replaces its old entry
            listing = [e for e in listing if e.split(b"\t", 1)[1] != parts[depth].encode()]
        sha = run("mktree", "-z", data=b"\0".join([*listing, entry]) + b"\0").strip()
        entry = b"040000 tree " + sha + b"\t" + (parts[depth - 1].encode() if depth else b"")
    commit = run("commit-tree", sha.decode(), "-p", "HEAD", "-m", "crafted").decode().strip()
    git(root, "tag", "-f", "v1", commit)


Mutation = Callable[[MiniProject], None]


def _overlay_pair(p: MiniProject) -> None:
    p.write(f"overlays/p1/files/edge/extra/{NFC}", "1\n")
    p.write(f"overlays/p1/files/edge/extra/{NFD}", "2\n")


def _codebase_and_overlay(p: MiniProject) -> None:
    p.write(f"app/edge/extra/{NFC}", "1\n")
    p.write(f"overlays/p2/files/edge/extra/{NFD}", "2\n")


HOSTILE: dict[str, tuple[Mutation, str]] = {  # a change, and the (escaped) file its refusal names
    "overlay-bidi": (lambda p: p.write("overlays/p1/files/edge/extra/a\u202etxt.sh", "x\n"), "a\\u202etxt.sh"),
    "codebase-newline": (lambda p: p.write("app/edge/new\nline.txt", "x\n"), "app/edge/new\\nline.txt@v1"),
    "codebase-zero-width": (lambda p: p.write("app/ingest/run\u200b.sh", "x\n"), "app/ingest/run\\u200b.sh@v1"),
    "overlay-nfc-nfd": (_overlay_pair, "overlays/p1/files/edge/extra/caf"),
    "codebase-and-overlay-nfc-nfd": (_codebase_and_overlay, "edge/extra/caf"),
    "rendered-nfc-nfd": (
        lambda p: (p.write(f"app/edge/{NFC}.j2", "{{ values.port }}\n"), p.write(f"app/edge/{NFD}", "2\n")),
        "app/edge/caf",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_render_and_deploy_refuse_hostile_names(case: str, tmp_path: Path, rollout: Callable[..., Result]) -> None:
    mutate, shown = HOSTILE[case]
    project = make_mini(tmp_path / "mini")
    _local_hosts(project, tmp_path / "hosts")
    mutate(project)
    project.commit("v1")
    for verb in (["validate"], ["render", "--out", str(tmp_path / "out")], ["deploy", "--release", "v1", "--yes"]):
        result = rollout(*verb, "-C", project.root)
        assert result.code == 2, f"{verb[0]} exit {result.code}: {result.text}"
        assert shown in result.err and "Traceback" not in result.text, f"{verb[0]}: {result.err}"
    assert not (tmp_path / "out").exists(), "a refused render wrote bundles"
    hosts = tmp_path / "hosts"
    assert not hosts.exists(), f"a refused deploy made host folders: {sorted(p.name for p in hosts.iterdir())}"


def test_names_only_the_index_holds_are_refused(mini: MiniProject, rollout: Callable[..., Result]) -> None:
    _index_file(mini.root, "app/edge/tab\tand\u202ebidi.txt", b"x\n")
    git(mini.root, "commit", "-q", "-m", "index only")
    git(mini.root, "tag", "-f", "v1")
    result = rollout("validate", "-C", mini.root, "--json")
    problems = [json.loads(line) for line in result.out.splitlines()]
    assert result.code == 2, result.text
    assert [p["file"] for p in problems] == ["app/edge/tab\\tand\\u202ebidi.txt@v1"], problems
    assert "code base at release v1" in problems[0]["message"], problems


@pytest.mark.parametrize("name", [b"..", b".", b".GIT"])
def test_crafted_tree_entries_are_refused_not_crashed(
    name: bytes, mini: MiniProject, rollout: Callable[..., Result]
) -> None:
    _crafted_entry(mini.root, "app/edge", name)
    result = rollout("validate", "-C", mini.root)
    assert result.code == 2, f"exit {result.code}: {result.text}"
    assert "app/edge@v1" in result.err and "git refuses a name" in result.err, result.err


# -- ordinary non-ASCII names, end to end -------------------------------------------------------

UNICODE_ROLLOUT = """
    name: unicode
    codebase: {repo: ., path: app, ref: v1}
    layers:
      - name: edge
        target: /opt/unicode/edge
        checks:
          - name: files
            type: command
            command: >-
              test -f 'current/überblick-ñ.json' && test -f current/日本語.txt
              && test -f 'current/extra/Ünïcødé 計画.txt'
    overlays:
      may_replace: ["edge/*.j2"]
      may_add: ["edge/extra/*"]
    strategy:
      waves:
        - name: all
          select: {remaining: true}
    """
UNICODE_FILES = {
    "edge/überblick-ñ.json.j2": '{"plant": {{ plant.name | to_json }}, "größe": {{ values.size }}}\n',
    "edge/日本語.txt": "こんにちは\n",
    "edge/🎉.txt": "party\n",
    f"edge/{NFD}": "stored decomposed, as macOS makes it\n",
}


def _unicode_project(root: Path, hosts: Path) -> Path:
    project = MiniProject(root)
    project.write("rollout.yaml", UNICODE_ROLLOUT)
    project.write("app/values.yaml", "size: 1\n")
    for rel, text in UNICODE_FILES.items():
        project.write(f"app/{rel}", text)
    project.write("plants/p1.yaml", "archetype: std\ntimezone: Asia/Tokyo\nwindows: always\n")
    project.write("overlays/p1/files/edge/extra/Ünïcødé 計画.txt", "added by the plant\n")
    project.write("overlays/p1/values.yaml", "size: 2\n")
    inventory = f"""
        all:
          vars: {{ansible_connection: local}}
          children:
            edge:
              hosts:
                p1-gw: {{ansible_host: 127.0.3.1, rollout_root: "{hosts}/p1-gw"}}
        """
    project.write("inventories/p1.yml", textwrap.dedent(inventory))
    commit_all(root, "release v1", "v1")
    return root


def test_non_ascii_names_validate_render_and_deploy(tmp_path: Path, rollout: Callable[..., Result]) -> None:
    root = _unicode_project(tmp_path / "project", tmp_path / "hosts")
    validated = rollout("validate", "-C", root)
    assert validated.code == 0, validated.text
    rendered = rollout("render", "-C", root, "--out", tmp_path / "out")
    assert rendered.code == 0, rendered.text
    files = tmp_path / "out/p1/edge/files"
    made = sorted(p.relative_to(files).as_posix() for p in files.rglob("*") if p.is_file())
    expected = sorted(["überblick-ñ.json", "日本語.txt", "🎉.txt", NFD, "extra/Ünïcødé 計画.txt"])
    assert made == expected, made
    manifest = json.loads((tmp_path / "out/p1/edge/manifest.json").read_text())
    assert sorted(f["path"] for f in manifest["files"]) == expected, manifest["files"]
    deployed = rollout("deploy", "-C", root, "--release", "v1", "--yes")
    assert deployed.code == 0, deployed.text
    current = tmp_path / "hosts/p1-gw/opt/unicode/edge/current"
    on_host = sorted(p.relative_to(current).as_posix() for p in current.rglob("*") if p.is_file())
    assert set(expected) <= set(on_host), on_host
    assert json.loads((current / "überblick-ñ.json").read_text()) == {"plant": "p1", "größe": 2}
    assert (current / NFD).read_text() == UNICODE_FILES[f"edge/{NFD}"]
