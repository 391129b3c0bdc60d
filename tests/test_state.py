"""The state: the SQLite backend under the contract suite, its schema upgrades, and state URLs."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest
from access_contract import AccessContract
from agents_contract import AgentContract
from assets_contract import AssetContract, host
from lease_contract import LeaseContract
from state_contract import SPAWN, WAIT, Backend, StateContract, reap, record, spawn

from conftest import MiniProject, Result
from rollout.config.project import load_project
from rollout.core.events import Event
from rollout.errors import ConfigError
from rollout.service import open_state, state_url
from rollout.state import sqlite_schema
from rollout.state.access import Delivery, Job, User
from rollout.state.journal import JournalError
from rollout.state.rows import rollout_row
from rollout.state.sqlite import SqliteJournal
from rollout.state.url import StateUrlError, mask, parse_state_url


class SqliteBackend(Backend):
    """A new SQLite state file in a temporary folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"  # an absolute path: four slashes
        SqliteJournal(path)  # the store exists, as after the first verb

    def _raw(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, isolation_level=None, timeout=30)

    def fail_event_inserts(self, kind: str) -> None:
        with closing(self._raw()) as db:
            db.execute(
                f"CREATE TRIGGER fail_{kind} BEFORE INSERT ON events WHEN NEW.kind = '{kind}' "
                "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
            )

    def set_schema(self, version: int) -> None:
        with closing(self._raw()) as db:
            db.execute("UPDATE schema_version SET version = ?", (version,))

    def vanish(self) -> None:
        for name in (self.path.name, f"{self.path.name}-wal", f"{self.path.name}-shm"):
            (self.path.parent / name).unlink(missing_ok=True)

    def exists(self) -> bool:
        return self.path.exists()

    @contextmanager
    def read_only(self) -> Iterator[None]:
        # As root, permissions do not stop writes; the immutable flag does, even on open files.
        files = [str(p) for p in (self.path, self.path.with_name(f"{self.path.name}-wal")) if p.exists()]
        subprocess.run(["chattr", "+i", *files], check=True, capture_output=True, timeout=30)
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", *files], check=True, capture_output=True, timeout=30)


class TestSqliteState(StateContract, LeaseContract, AccessContract, AssetContract, AgentContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> SqliteBackend:
        return SqliteBackend(tmp_path / "state" / "state.db")


# Journals as rollout wrote them before schema versions: version 1, with or without locks.operator.
OLD_SCHEMA = """
CREATE TABLE rollouts (id TEXT PRIMARY KEY, kind TEXT NOT NULL, release TEXT, commit_id TEXT,
    created REAL NOT NULL, operator TEXT NOT NULL, spec TEXT NOT NULL);
CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, rollout TEXT NOT NULL REFERENCES rollouts(id),
    time REAL NOT NULL, kind TEXT NOT NULL, plant TEXT NOT NULL, layer TEXT, host TEXT, release TEXT,
    detail TEXT NOT NULL);
CREATE INDEX events_by_rollout ON events(rollout, seq);
CREATE INDEX events_by_plant ON events(plant, seq);
CREATE TABLE locks (plant TEXT PRIMARY KEY, owner TEXT NOT NULL, purpose TEXT NOT NULL, acquired REAL NOT NULL,
    expires REAL NOT NULL, hostname TEXT NOT NULL, pid INTEGER NOT NULL{operator});
INSERT INTO rollouts VALUES ('r1', 'deploy', 'v1', 'c0ffee', 1.0, 'tester', '{{"waves": [{{"plants": ["p1"]}}]}}');
INSERT INTO events (rollout, time, kind, plant, detail) VALUES ('r1', 5.0, 'plant.started', 'p1', '{{"n": 1}}');
INSERT INTO locks (plant, owner, purpose, acquired, expires, hostname, pid)
    VALUES ('p1', 'r1', 'deploy', 1.0, 99.0, 'elsewhere', 1);
"""


@pytest.mark.parametrize("operator", ["", ", operator TEXT NOT NULL DEFAULT ''"], ids=["v1", "v1-with-operator"])
def test_a_journal_from_before_schema_versions_is_upgraded_in_place(tmp_path: Path, operator: str) -> None:
    path = tmp_path / "state.db"
    with closing(sqlite3.connect(path)) as db:
        db.executescript(OLD_SCHEMA.format(operator=operator))
    journal = SqliteJournal(path)
    assert journal.schema() == SqliteJournal.known_schema == sqlite_schema.LATEST, f"upgraded to {journal.schema()}"
    assert journal.rollout("r1") == record("r1"), "the upgrade lost the rollout"
    assert [(e.seq, e.event.kind, e.event.detail) for e in journal.events()] == [(1, "plant.started", {"n": 1})]
    assert [(lk.owner, lk.operator, lk.fence) for lk in journal.locks()] == [("r1", "", 0)], journal.locks()
    assert journal.append("r1", Event("plant.done", "p1")) == 2
    assert SqliteJournal(path).schema() == sqlite_schema.LATEST, "opening an upgraded journal again changed it"


def test_a_version_2_journal_gets_fencing_numbers_and_keeps_its_lease(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with closing(sqlite3.connect(path)) as db:
        db.executescript(OLD_SCHEMA.format(operator=", operator TEXT NOT NULL DEFAULT ''"))
        db.executescript(
            "CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (2);"
        )
    journal = SqliteJournal(path)
    assert journal.schema() == sqlite_schema.LATEST and [lk.fence for lk in journal.locks()] == [0], journal.locks()
    taken = journal.acquire("p1", "r2", "deploy", 60.0)  # the old lease expired long ago (at 99 s)
    assert taken.fence == 1 and journal.locks() == [taken], journal.locks()


def test_a_version_3_journal_gets_the_access_tables_and_keeps_its_events(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with closing(sqlite3.connect(path, isolation_level=None)) as db:  # as a rollout of schema 3 left it
        for migrate in sqlite_schema.MIGRATIONS[:3]:
            migrate(db)
        db.execute("INSERT INTO schema_version (version) VALUES (3)")
        db.execute("INSERT INTO rollouts VALUES (?, ?, ?, ?, ?, ?, ?)", rollout_row(record("r1")))
        db.execute(
            "INSERT INTO events (rollout, time, kind, plant, detail) VALUES ('r1', 5.0, 'plant.started', 'p1', '{}')"
        )
        assert sqlite_schema.stored_version(db) == 3 and "users" not in _tables(db)
    journal = SqliteJournal(path)
    assert journal.schema() == sqlite_schema.LATEST, f"upgraded to {journal.schema()}"
    assert journal.rollout("r1") == record("r1"), "the upgrade lost the rollout"
    assert [(e.seq, e.event.kind) for e in journal.events()] == [(1, "plant.started")], "the upgrade lost the events"
    ann = User("ann", "admin", (), "h-ann", 1.0)
    assert journal.add_user(ann) and journal.user_by_token("h-ann") == ann
    assert journal.claim_job(Job("k1", "rollback", {}, "ann", "why", 2.0))[1] is True
    assert journal.enqueue_deliveries([Delivery("a:1", "a", 1, "r1", "finished")]) == 1
    assert [d.id for d in journal.claim_deliveries(3.0, "x", 60.0, 10)] == ["a:1"]
    assert journal.append("r1", Event("plant.done", "p1")) == 2
    with closing(sqlite3.connect(path)) as db:
        assert {"users", "sessions", "jobs", "deliveries"} <= _tables(db)


def test_a_version_4_journal_gets_the_asset_table_and_keeps_its_users(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    ann = User("ann", "admin", (), "h-ann", 1.0)
    with closing(sqlite3.connect(path, isolation_level=None)) as db:  # as a rollout of schema 4 left it
        for migrate in sqlite_schema.MIGRATIONS[:4]:
            migrate(db)
        db.execute("INSERT INTO schema_version (version) VALUES (4)")
        db.execute("INSERT INTO users VALUES ('ann', 'admin', '[]', 'h-ann', 1.0, '', NULL)")
        assert sqlite_schema.stored_version(db) == 4 and "assets" not in _tables(db)
    journal = SqliteJournal(path)
    assert journal.schema() == sqlite_schema.LATEST, f"upgraded to {journal.schema()}"
    assert journal.user("ann") == ann, "the upgrade lost the users"
    journal.put_assets([host("p1", "a", 1.0)])
    assert journal.assets() == [host("p1", "a", 1.0)]


def test_a_version_5_journal_gets_the_agent_tables_and_keeps_its_assets(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with closing(sqlite3.connect(path, isolation_level=None)) as db:  # as a rollout of schema 5 left it
        for migrate in sqlite_schema.MIGRATIONS[:5]:
            migrate(db)
        db.execute("INSERT INTO schema_version (version) VALUES (5)")
        db.execute("INSERT INTO assets VALUES ('p1', 'a', 1.0, '{}')")
        assert sqlite_schema.stored_version(db) == 5 and "agent_orders" not in _tables(db)
    journal = SqliteJournal(path)
    assert journal.schema() == sqlite_schema.LATEST == 6, f"upgraded to {journal.schema()}"
    with closing(sqlite3.connect(path)) as db:
        assert {"blobs", "agent_orders", "order_blobs", "order_events", "heartbeats"} <= _tables(db)
        assert db.execute("SELECT count(*) FROM assets").fetchone() == (1,), "the upgrade lost the asset records"
    journal.put_blobs({"h": b"x"})
    assert journal.blob("h") == b"x"


def _tables(db: sqlite3.Connection) -> set[str]:
    return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def open_schema(path: str, go: Any, out: Any) -> None:
    """A child: open the state at ``path`` together with the others and report its schema (or error)."""
    go.wait(WAIT)
    try:
        out.put(SqliteJournal(Path(path)).schema())
    except JournalError as exc:
        out.put(str(exc))


def test_processes_opening_an_old_journal_at_once_upgrade_it_once(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with closing(sqlite3.connect(path)) as db:
        db.executescript(OLD_SCHEMA.format(operator=""))
    go, out = SPAWN.Barrier(4), SPAWN.Queue()
    children = [spawn(open_schema, str(path), go, out) for _ in range(4)]
    try:
        got = [out.get(timeout=WAIT) for _ in children]
    finally:
        reap(children)
    assert got == [sqlite_schema.LATEST] * 4, f"concurrent upgrades: {got}"
    with closing(sqlite3.connect(path)) as db:
        versions = db.execute("SELECT version FROM schema_version").fetchall()
    assert versions == [(sqlite_schema.LATEST,)], f"schema_version holds {versions}"
    assert [e.seq for e in SqliteJournal(path).events()] == [1]


def test_a_newer_schema_is_refused_through_the_cli_with_exit_3(
    mini: MiniProject, rollout: Callable[..., Result]
) -> None:
    backend = SqliteBackend(mini.root / ".rollout" / "state.db")
    backend.set_schema(7)
    done = rollout("history", "-C", mini.root, "--json")
    assert done.code == 3, done.text
    expected = f"has schema 7, this rollout knows up to {sqlite_schema.LATEST}: upgrade rollout"
    assert expected in done.out and "Traceback" not in done.text, done.text


GOOD_URLS = [
    ("sqlite:///.rollout/state.db", "/proj/.rollout/state.db"),
    ("sqlite:///state.db", "/proj/state.db"),
    ("sqlite:////var/lib/rollout/state.db", "/var/lib/rollout/state.db"),
    ("SQLite:///a b/state.db", "/proj/a b/state.db"),
    ("sqlite:///../shared/state.db", "/proj/../shared/state.db"),
]


@pytest.mark.parametrize(("url", "path"), GOOD_URLS)
def test_good_state_urls_name_their_file(url: str, path: str) -> None:
    parsed = parse_state_url(url, Path("/proj"))
    assert (parsed.backend, str(parsed.path), parsed.shown) == ("sqlite", path, url)


BAD_URLS = [
    ("mysql://ann:s3cret@db/rollout", "not a state URL"),
    (".rollout/state.db", "not a state URL"),
    ("", "not a state URL"),
    ("sqlite:/state.db", "not a state URL"),
    ("sqlite://host/state.db", "no host"),
    ("sqlite://ann:s3cret@host/state.db", "no host"),
    ("sqlite://", "no host"),
    ("sqlite:///", "path of a file"),
    ("sqlite:////", "path of a file"),
    ("sqlite:///state/", "path of a file"),
    ("sqlite:///state.db?mode=ro", "no '?' options"),
    ("sqlite:///state.db?password=s3cret", "no '?' options"),
    ("sqlite:///state.db#x", "no '?' options"),
    ("sqlite:///sta\x00te.db", "not a usable URL"),
    ("sqlite:///" + "x" * 5000, "not a usable URL"),
]


@pytest.mark.parametrize(("url", "message"), BAD_URLS)
def test_bad_state_urls_say_what_is_expected_and_never_show_a_password(url: str, message: str) -> None:
    with pytest.raises(StateUrlError) as refused:
        parse_state_url(url, Path("/proj"))
    text = str(refused.value)
    assert message in text and "sqlite:///<path relative to the project>" in text, text
    assert "s3cret" not in text, f"password shown: {text}"


@pytest.mark.parametrize(
    ("url", "conninfo"),
    [
        ("postgresql://ann@db.example:5432/rollout", "postgresql://ann@db.example:5432/rollout"),
        ("postgres://ann@db/rollout?sslmode=verify-full", "postgres://ann@db/rollout?sslmode=verify-full"),
        ("PostgreSQL://db/rollout?connect_timeout=3", "postgresql://db/rollout?connect_timeout=3"),
        ("postgresql://ann@%2Fvar%2Frun%2Fpostgresql/rollout", "postgresql://ann@%2Fvar%2Frun%2Fpostgresql/rollout"),
    ],
)
def test_postgresql_urls_go_to_libpq_as_they_are(url: str, conninfo: str) -> None:
    parsed = parse_state_url(url, Path("/proj"))
    assert (parsed.backend, parsed.conninfo, parsed.shown, parsed.exists()) == ("postgresql", conninfo, url, True)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://ann:s3cret@db:5432/x", "postgresql://ann:***@db:5432/x"),
        ("postgresql://:s3cret@db/x", "postgresql://:***@db/x"),
        ("postgresql://ann:s3@cr/et@db/x", "postgresql://ann:***@db/x"),
        ("postgresql://ann@db/x", "postgresql://ann@db/x"),
        ("postgresql://db/x?user=ann&password=s3cret&x=1", "postgresql://db/x?user=ann&password=***&x=1"),
        ("sqlite:///state.db", "sqlite:///state.db"),
    ],
)
def test_passwords_are_masked(url: str, shown: str) -> None:
    assert mask(url) == shown


def test_the_state_is_in_rollout_yaml_or_rollout_state_which_wins(mini: MiniProject, tmp_path: Path) -> None:
    project = load_project(mini.root)
    assert state_url(project, {}).path == mini.root / ".rollout/state.db", "the default moved"
    text = (mini.root / "rollout.yaml").read_text()
    mini.write("rollout.yaml", text + "state:\n  url: sqlite:///var/state.db\n")
    project = load_project(mini.root)
    assert state_url(project, {}).path == mini.root / "var/state.db"
    elsewhere = tmp_path / "elsewhere.db"
    assert state_url(project, {"ROLLOUT_STATE": f"sqlite:///{elsewhere}"}).path == elsewhere, "env did not win"
    journal = open_state(project, environ={"ROLLOUT_STATE": f"sqlite:///{elsewhere}"})
    journal.create(record("r1"))
    assert elsewhere.exists() and not (mini.root / "var").exists(), "the state went to the wrong place"


def test_an_unknown_key_under_state_is_refused_with_its_line(mini: MiniProject, rollout: Callable[..., Result]) -> None:
    text = (mini.root / "rollout.yaml").read_text()
    lines = len(text.splitlines())
    mini.write("rollout.yaml", text + "state:\n  url: sqlite:///s.db\n  uri: sqlite:///t.db\n")
    done = rollout("validate", "-C", mini.root)
    assert done.code == 2 and f"rollout.yaml:{lines + 3}: state.uri" in done.text, done.text


def test_a_bad_url_in_rollout_yaml_is_exit_2_naming_file_line_and_setting(
    mini: MiniProject, rollout: Callable[..., Result]
) -> None:
    text = (mini.root / "rollout.yaml").read_text()
    lines = len(text.splitlines())
    mini.write("rollout.yaml", text + "state:\n  url: postgresql://ann:s3cret@db/rollout\n")
    done = rollout("history", "-C", mini.root)
    assert done.code == 2, done.text
    assert f"rollout.yaml:{lines + 2}: state.url" in done.err and "PGPASSFILE" in done.err, done.err
    assert "postgresql://ann:***@db/rollout" in done.err and "s3cret" not in done.text, done.text
    assert not (mini.root / ".rollout").exists(), "a refused state URL still made a state"


def test_a_bad_rollout_state_is_exit_2_naming_the_variable(
    mini: MiniProject, rollout: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROLLOUT_STATE", "postgresql://ann:s3cret@db/rollout")
    done = rollout("history", "-C", mini.root, "--json")
    assert done.code == 2, done.text
    assert "ROLLOUT_STATE" in done.out and "PGPASSWORD" in done.out and "s3cret" not in done.text, done.text
    monkeypatch.setenv("ROLLOUT_STATE", f"sqlite:///{mini.root}")
    done = rollout("history", "-C", mini.root)
    assert done.code == 2 and "names a folder" in done.err, done.text
    assert not (mini.root / ".rollout").exists(), "a refused state URL still made a state"


def test_a_state_url_error_is_a_config_error_with_no_line_when_not_written(mini: MiniProject) -> None:
    project = load_project(mini.root)
    with pytest.raises(ConfigError) as refused:
        state_url(project, {"ROLLOUT_STATE": ""})
    problem = refused.value.problems[0]
    assert (problem.file, problem.location, problem.line) == ("(environment)", "ROLLOUT_STATE", None), problem


def test_state_migrate_and_import_work_on_sqlite_too(mini: MiniProject, rollout: Callable[..., Result]) -> None:
    done = rollout("state", "migrate", "-C", mini.root, "--json")
    assert done.code == 0 and '"before": 0' in done.out and f'"after": {sqlite_schema.LATEST}' in done.out, done.text
    done = rollout("state", "migrate", "-C", mini.root)
    assert done.code == 0 and f"at schema {sqlite_schema.LATEST} already" in done.out, done.text
    old = SqliteJournal(mini.root / "old.db")
    old.create(record("r1"))
    old.append("r1", Event("plant.started", "p1"))
    for _ in range(2):
        done = rollout("state", "import", mini.root / "old.db", "-C", mini.root, "--json")
        assert done.code == 0, done.text
    assert '"imported": []' in done.out, "a second import copied again"
    state = SqliteJournal(mini.root / ".rollout" / "state.db")
    assert [r.id for r in state.rollouts()] == ["r1"] and [e.event.kind for e in state.events()] == ["plant.started"]


WRITE_THEN_END = """
import gc, os, sys, threading
from rollout.core.events import Event
from rollout.service import settle_states
from rollout.state.journal import RolloutRecord
from rollout.state.sqlite import SqliteJournal
journal = SqliteJournal(__import__("pathlib").Path(sys.argv[1]))
journal.create(RolloutRecord("r1", "deploy", "v1", "c0ffee", 1.0, "tester", {"waves": [{"plants": ["p1"]}]}))
def write(plant):
    for n in range(50):
        journal.append("r1", Event("plant.started", plant, detail={"n": n}))
threads = [threading.Thread(target=write, args=(f"p{i}",)) for i in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print(settle_states())
gc.freeze()
os._exit(0)  # harsher than the CLI's end: not even exit handlers, no connection closed
"""


def test_a_process_that_ends_without_closing_its_journal_after_settling_keeps_every_event(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    done = subprocess.run([sys.executable, "-c", WRITE_THEN_END, str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr
    events = SqliteJournal(path).events(rollout="r1")
    assert len(events) == 200 and {e.event.plant for e in events} == {"p0", "p1", "p2", "p3"}


def test_settling_skips_a_journal_whose_file_was_removed(tmp_path: Path) -> None:
    from rollout.service import settle_states

    journals = [SqliteJournal(tmp_path / "gone.db"), SqliteJournal(tmp_path / "kept.db")]  # both held open
    (tmp_path / "gone.db").unlink()
    assert settle_states() == []  # the verb that used it has said so; the other is synced
    journals[1].create(record("r1"))
    assert settle_states() == []
