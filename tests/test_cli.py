"""The command line's contract: exit codes, -C anywhere, JSON errors, no tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import MiniProject
from rollout import service


def test_usage_errors_exit_2(mini: MiniProject, rollout) -> None:
    assert rollout("frobnicate").code == 2
    assert rollout("plan", "-C", mini.root, "--no-such-option").code == 2
    result = rollout("render", "-C", mini.root, "--explain")
    assert result.code == 2 and "--explain needs exactly one --plant" in result.text
    assert rollout("diff", "-C", mini.root).code == 2  # --plant is required


def test_dash_c_before_or_after_the_verb(mini: MiniProject, rollout) -> None:
    assert rollout("-C", mini.root, "plan").code == 0
    assert rollout("plan", "-C", mini.root).code == 0


def test_project_is_found_from_a_subfolder(mini: MiniProject, rollout, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(mini.root / "app" / "edge")
    result = rollout("plan", "--json")
    assert result.code == 0 and json.loads(result.out.splitlines()[0])["release"] == "v1"


def test_unknown_plant_is_bad_input(mini: MiniProject, rollout) -> None:
    result = rollout("diff", "-C", mini.root, "--plant", "p11")
    assert result.code == 2 and "no plant named 'p11' (did you mean 'p1'?)" in result.err
    result = rollout("render", "-C", mini.root, "--plant", "nope", "--json")
    error = json.loads(result.out.splitlines()[0])
    assert result.code == 2 and error["type"] == "error" and error["file"] == "--plant"


def test_bad_release_option_names_the_option(mini: MiniProject, rollout) -> None:
    result = rollout("diff", "-C", mini.root, "-p", "p1", "--against", "v7")
    assert result.code == 2 and "(command line): --against" in result.err
    result = rollout("plan", "-C", mini.root, "--release", "v7")
    assert result.code == 2 and "(command line): --release" in result.err


def test_json_usage_error_is_json(mini: MiniProject, rollout) -> None:
    result = rollout("plan", "-C", mini.root, "--json", "--bogus")
    record = json.loads(result.out.splitlines()[0])
    assert result.code == 2 and record["type"] == "error" and "bogus" in record["message"]


def test_unexpected_errors_go_to_a_log_not_the_screen(
    mini: MiniProject, rollout, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))

    def boom(*_: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(service, "plan", boom)
    result = rollout("plan", "-C", mini.root)
    assert result.code == 70 and "Traceback" not in result.text
    logs = list((tmp_path / "state" / "rollout").glob("crash-*.log"))
    assert len(logs) == 1 and "RuntimeError: disk on fire" in logs[0].read_text()
    assert str(logs[0]) in result.err


def test_diff_summary_goes_to_stderr_so_stdout_is_a_patch(mini: MiniProject, rollout) -> None:
    mini.write("app/edge/static.txt", "changed bytes\n")
    mini.commit("v2")
    result = rollout("diff", "-C", mini.root, "-p", "p2", "--release", "v2", "--against", "v1")
    assert result.code == 0
    assert result.out.startswith("--- v1/edge/static.txt\n+++ v2/edge/static.txt\n")
    assert "-unchanged bytes\n+changed bytes\n" in result.out
    assert "1 files differ" in result.err and "files differ" not in result.out


def test_diff_against_nothing_shows_every_file_added(mini: MiniProject, rollout) -> None:
    result = rollout("diff", "-C", mini.root, "-p", "p2", "--json")
    changes = [json.loads(line) for line in result.out.splitlines()][:-1]
    assert {c["status"] for c in changes} == {"added"} and len(changes) == 4


def test_validate_checks_the_state_url_without_making_a_state(
    mini: MiniProject, rollout, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROLLOUT_STATE", "mysql://db/rollout")
    refused = rollout("validate", "-C", mini.root, "--json")
    assert refused.code == 2, refused.text
    problem = json.loads(refused.out.splitlines()[0])
    assert (problem["location"], problem["found"]) == ("ROLLOUT_STATE", "'mysql://db/rollout'"), problem
    monkeypatch.delenv("ROLLOUT_STATE")
    assert rollout("validate", "-C", mini.root).code == 0
    assert not (mini.root / ".rollout").exists(), "validate made a state"


def test_help_lists_every_verb_with_its_own_summary() -> None:
    """``rollout --help`` lists the verbs from a table (so it imports none of them): the table
    names every verb the modules register, each with the summary its own help gives."""
    import importlib

    from rollout.cli.commands import cli
    from rollout.cli.verbs import VERBS

    for module in {verb.module for verb in VERBS.values()}:
        importlib.import_module(module)
    assert set(cli.commands) == set(VERBS)
    for name, verb in VERBS.items():
        assert cli.commands[name].get_short_help_str(1000) == verb.summary, name


HEAVY = ("paramiko", "fabric", "invoke", "ansible_runner", "jinja2", "fastapi", "uvicorn", "psycopg", "starlette")
"""Libraries that showing help or planning must not load: they are for the verbs that reach hosts,
render, or serve (what start-up costs is measured in bench/speed.py)."""
READS_NO_RELEASE = ("git",)
"""GitPython, for the verbs that never read a release from git (plan does: it names the commit)."""
FOR_PEOPLE = ("rich",)
"""rich, for what is shown to a person: help is click's, an answer in JSON is written raw."""


@pytest.mark.parametrize("verb", [["--help"], ["plan", "--json"], ["status", "--json"]])
def test_help_plan_and_status_load_no_host_render_web_or_terminal_library(mini: MiniProject, verb: list[str]) -> None:
    import subprocess
    import sys

    heavy = HEAVY + FOR_PEOPLE + (READS_NO_RELEASE if verb[0] != "plan" else ())
    probe = (
        "import sys\nfrom rollout.cli import run\ncode = run(sys.argv[1:])\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))\nsys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, "-C", str(mini.root), *verb], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "[]", done.stdout[-2000:]
    if verb == ["--help"]:
        assert "plan" in done.stdout and "status" in done.stdout


def test_a_verb_that_renders_still_loads_what_it_needs(mini: MiniProject, rollout) -> None:
    result = rollout("render", "-C", mini.root, "--json")
    assert result.code == 0, result.text
    assert json.loads(result.out.splitlines()[0])["type"] == "bundle"
