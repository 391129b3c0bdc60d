"""``rollout status --watch``: a second process follows a deploy as it happens, on SQLite (polling)
and on a real PostgreSQL (LISTEN/NOTIFY); it ends after --watch-for, once idle, or on Ctrl-C."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from conftest import MiniProject, Result
from deploykit import DeployProject, build, events_of
from pgserver import PgServer
from rollout.cli.commands import _console
from rollout.cli.views import watching
from rollout.core.events import Event
from rollout.core.projection import fold
from rollout.service import Update, open_state
from rollout.state.journal import JournalEvent

ROLLOUT = str(Path(sys.executable).parent / "rollout")
LIMIT = 120.0
"""Seconds any one command or line is waited for; a test that would wait longer fails."""


@pytest.fixture(params=["sqlite", "postgresql"])
def state(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The backend's name; for PostgreSQL, ROLLOUT_STATE names a new, migrated database (the
    processes the test starts inherit it)."""
    if request.param == "sqlite":
        monkeypatch.delenv("ROLLOUT_STATE", raising=False)
        yield "sqlite"
        return
    server: PgServer = request.getfixturevalue("pg_server")
    name = server.create_database()
    monkeypatch.setenv("ROLLOUT_STATE", server.url(name))
    migrated = subprocess.run([ROLLOUT, "state", "migrate"], capture_output=True, text=True, timeout=LIMIT)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    yield "postgresql"
    server.drop_database(name)


@pytest.fixture
def dp(tmp_path: Path) -> Iterator[DeployProject]:
    project = build(tmp_path, "local", None, 3, light=True)
    yield project
    project.stop_services()


class Process:
    """A command in a process of its own, its output read line by line as it comes, within LIMIT."""

    def __init__(self, *args: str | Path) -> None:
        self.proc = subprocess.Popen(
            [ROLLOUT, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        assert self.proc.stdout is not None
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line)
        self.lines.put(None)

    def until(self, stop: Callable[[dict[str, Any]], bool]) -> bool:
        """Read JSON lines until ``stop`` says so (True) or the output ends (False)."""
        deadline = time.monotonic() + LIMIT
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                return False
            self.seen.append(line)
            if stop(json.loads(line)):
                return True
        raise AssertionError(f"no end within {LIMIT} s; seen: {self.seen[-3:]}")

    def finish(self) -> tuple[int, list[dict[str, Any]], str]:
        """The exit code, every JSON line it wrote, and its stderr."""
        self.until(lambda _: False)
        assert self.proc.stderr is not None
        err = self.proc.stderr.read()
        return self.proc.wait(timeout=LIMIT), [json.loads(line) for line in self.seen], err

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=LIMIT)


def test_a_watcher_shows_a_deploy_of_another_process_event_by_event(state: str, dp: DeployProject) -> None:
    deploy = Process("deploy", "-C", dp.root, "--release", "v1", "--yes", "--json")
    watcher: Process | None = None
    try:
        assert deploy.until(lambda e: e.get("kind") == "rollout.created"), deploy.seen
        rid = json.loads(deploy.seen[0])["rollout"]
        # Held still until the watcher sees it under way, so it never misses the whole rollout.
        deploy.proc.send_signal(signal.SIGSTOP)
        try:
            watcher = Process("status", "-C", dp.root, "--watch", "--json", "--until-idle")
            assert watcher.until(lambda r: r.get("type") == "rollout" and r.get("id") == rid), watcher.seen
            time.sleep(0.5)
        finally:
            deploy.proc.send_signal(signal.SIGCONT)
        code, shown, err = deploy.finish()
        assert code == 0, err
        watched_code, lines, watched_err = watcher.finish()
    finally:
        deploy.stop()
        if watcher is not None:
            watcher.stop()
    assert watched_code == 0, watched_err
    watched = [line for line in lines if line.get("type") == "event"]
    seqs = [e["seq"] for e in watched]
    assert watched and seqs == sorted(set(seqs)), f"not in seq order: {seqs}"
    assert {e["rollout"] for e in watched} == {rid}, watched
    assert watched[-1]["kind"] == "rollout.finished", [e["kind"] for e in watched[-3:]]
    journal = [e.event.as_dict() for e in open_state(dp.project()).events(rollout=rid) if e.seq >= seqs[0]]
    assert watched == journal, "the watcher's lines are not the journal's events from where it started"
    by_deploy = {e["seq"]: e for e in shown if e.get("type") == "event"}
    assert watched == [by_deploy[s] for s in seqs], "the watcher's lines differ from deploy --json's"
    assert len(watched) >= 20, f"the watcher saw only {len(watched)} events of three plants' deploy"


def test_watching_an_idle_state_for_a_second_ends_after_about_a_second(
    state: str, mini: MiniProject, rollout: Callable[..., Result]
) -> None:
    started = time.monotonic()
    done = rollout("status", "-C", mini.root, "--watch", "--watch-for", "1s", "--json")
    took = time.monotonic() - started
    assert done.code == 0, done.text
    assert 1.0 <= took < 6.0, f"--watch-for 1s took {took:.2f} s"
    assert not [r for r in events_of(done.out) if r.get("type") == "event"], done.out
    started = time.monotonic()
    idle = rollout("status", "-C", mini.root, "--watch", "--watch-for", "60s", "--until-idle")
    assert idle.code == 0 and time.monotonic() - started < 10.0, f"--until-idle on an idle state: {idle.text}"


def test_ctrl_c_ends_a_watch_with_exit_0_and_no_traceback(state: str, mini: MiniProject) -> None:
    watcher = Process("status", "-C", mini.root, "--watch", "--json")
    try:
        assert watcher.until(lambda r: r.get("type") == "host"), watcher.seen  # the status is out: it follows
        time.sleep(1.0)
        assert watcher.proc.poll() is None, "the watch ended by itself"
        watcher.proc.send_signal(signal.SIGINT)
        code, _, err = watcher.finish()
    finally:
        watcher.stop()
    assert code == 0, f"Ctrl-C exited {code}: {err}"
    assert "Traceback" not in err and "aborted" not in err, err


def test_watch_options_need_watch(mini: MiniProject, rollout: Callable[..., Result]) -> None:
    for option in (["--until-idle"], ["--watch-for", "1s"]):
        done = rollout("status", "-C", mini.root, *option)
        assert done.code == 2 and "go with --watch" in done.text, done.text
    bad = rollout("status", "-C", mini.root, "--watch", "--watch-for", "soon")
    assert bad.code == 2 and "'soon' is not a duration" in bad.text, bad.text


def test_a_watched_line_names_its_rollout_and_how_far_it_is(capsys: pytest.CaptureFixture[str]) -> None:
    events = [
        Event("rollout.created", "", detail={"by": "ann", "release": "v2"}),
        Event("wave.started", "", detail={"wave": "all", "plants": ["p1", "p2"]}),
        Event("plant.done", "p1", release="v2", detail={"changed": True}),
        Event("rollout.finished", ""),
    ]
    state = fold(events[:2])
    console = _console()
    for seq, event in enumerate(events[2:], start=3):
        state.apply(event)
        watching.update(console, Update(JournalEvent(seq, "r-42", event), state), False)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("r-42  p1") and "done on v2" in out[0] and "1 of 2 plants done" in out[0], out
    assert out[1].startswith("r-42") and "finished: 1 of 2 plants done: 1 updated" in out[1], out
