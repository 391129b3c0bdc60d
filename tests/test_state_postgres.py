"""The PostgreSQL state on a real server: the contract suite, migrations, import, URLs, leases."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from access_contract import AccessContract
from agents_contract import AgentContract
from assets_contract import AssetContract, host
from lease_contract import LeaseContract
from psycopg import sql
from state_contract import SEEN_WITHIN, Backend, StateContract, record

from conftest import MiniProject, Result
from pgserver import SECRET, SECRET_USER, TESTER, PgServer, free_port
from rollout.core.clock import Clock
from rollout.core.events import Event
from rollout.service.state_admin import import_sqlite, migrate
from rollout.state import postgres_listen, postgres_pool, postgres_schema
from rollout.state.access import Delivery, Job, User
from rollout.state.journal import Journal, JournalError, SchemaError
from rollout.state.postgres import PostgresJournal
from rollout.state.rows import rollout_row
from rollout.state.sqlite import SqliteJournal
from rollout.state.url import StateUrlError, parse_state_url


class PostgresBackend(Backend):
    """A new database on the session's server, migrated as ``rollout state migrate`` would."""

    def __init__(self, server: PgServer, migrated: bool = True) -> None:
        self.server = server
        self.name = server.create_database()
        self.url = server.url(self.name)
        self.opened: list[PostgresJournal] = []
        if migrated:
            migrate(parse_state_url(self.url, Path("/")))

    def open(self, clock: Clock | None = None) -> Journal:
        journal = super().open(clock)
        assert isinstance(journal, PostgresJournal), journal
        self.opened.append(journal)
        return journal

    def close(self) -> None:
        for journal in self.opened:
            journal.close()
        self.server.drop_database(self.name)

    def run(self, statement: sql.Composable | str) -> None:
        """As the superuser, in this database."""
        with self.server.connect(self.name) as db:
            db.execute(statement)

    def fail_event_inserts(self, kind: str) -> None:
        self.run(
            "CREATE FUNCTION public.fail_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.kind = TG_ARGV[0] THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$"
        )
        self.run(
            sql.SQL(
                "CREATE TRIGGER fail_insert BEFORE INSERT ON rollout.events FOR EACH ROW EXECUTE FUNCTION "
                "public.fail_insert({})"
            ).format(sql.Literal(kind))
        )

    def set_schema(self, version: int) -> None:
        self.run(sql.SQL("UPDATE rollout.schema_version SET version = {}").format(sql.Literal(version)))

    def vanish(self) -> None:
        self.server.drop_database(self.name)

    def exists(self) -> bool:
        with self.server.connect() as db:
            return db.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.name,)).fetchone() is not None

    @contextmanager
    def read_only(self) -> Iterator[None]:
        # Privileges bind at every statement, also on connections already open.
        tester = sql.Identifier(TESTER)
        self.run(sql.SQL("REVOKE INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA rollout FROM {}").format(tester))
        try:
            yield
        finally:
            self.run(sql.SQL("GRANT INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA rollout TO {}").format(tester))


@pytest.fixture
def backend(pg_server: PgServer) -> Iterator[PostgresBackend]:
    store = PostgresBackend(pg_server)
    yield store
    store.close()


@pytest.fixture
def bare(pg_server: PgServer) -> Iterator[PostgresBackend]:
    """A new database without rollout's schema."""
    store = PostgresBackend(pg_server, migrated=False)
    yield store
    store.close()


class TestPostgresState(StateContract, LeaseContract, AccessContract, AssetContract, AgentContract):
    """The contract suite, unchanged, the lease and the access tests, on a real server."""


def test_migrate_creates_the_schema_of_an_empty_database_and_again_does_nothing(bare: PostgresBackend) -> None:
    url = parse_state_url(bare.url, Path("/"))
    assert migrate(url) == (0, postgres_schema.LATEST)
    journal = bare.open()
    journal.create(record("r1"))
    assert migrate(url) == (postgres_schema.LATEST, postgres_schema.LATEST), "a second migrate changed something"
    assert journal.rollout("r1") == record("r1") and journal.schema() == postgres_schema.LATEST


@pytest.mark.parametrize("version", [0, postgres_schema.LATEST - 1], ids=["missing", "older"])
def test_a_missing_or_older_schema_is_refused_saying_to_migrate(bare: PostgresBackend, version: int) -> None:
    if version:
        migrate(parse_state_url(bare.url, Path("/")))
        bare.set_schema(version)
    with pytest.raises(SchemaError) as refused:
        bare.open()
    assert "run 'rollout state migrate'" in str(refused.value) and bare.url in str(refused.value), refused.value


def test_a_version_1_state_is_refused_until_migrate_adds_the_access_tables_keeping_its_events(
    bare: PostgresBackend,
) -> None:
    with psycopg.connect(bare.url, autocommit=True) as db, db.transaction():  # as a rollout of schema 1 left it
        postgres_schema.MIGRATIONS[0](db)
        db.execute("INSERT INTO rollout.schema_version (version) VALUES (1)")
        db.execute("INSERT INTO rollout.rollouts VALUES (%s, %s, %s, %s, %s, %s, %s)", rollout_row(record("r1")))
        db.execute(
            "INSERT INTO rollout.events (rollout, time, kind, plant, detail) "
            "VALUES ('r1', 5, 'plant.started', 'p1', '{}')"
        )
    with pytest.raises(SchemaError) as refused:
        bare.open()
    expected = f"has schema 1, this rollout needs schema {postgres_schema.LATEST}: run 'rollout state migrate'"
    assert expected in str(refused.value), refused.value
    url = parse_state_url(bare.url, Path("/"))
    assert migrate(url) == (1, postgres_schema.LATEST) and postgres_schema.LATEST == 4
    journal = bare.open()
    assert journal.rollout("r1") == record("r1"), "the migration lost the rollout"
    assert [e.event.kind for e in journal.events()] == ["plant.started"], "the migration lost the events"
    ann = User("ann", "admin", (), "h-ann", 1.0)
    assert journal.add_user(ann) and journal.user_by_token("h-ann") == ann
    assert journal.claim_job(Job("k1", "rollback", {}, "ann", "why", 2.0))[1] is True
    assert journal.enqueue_deliveries([Delivery("a:1", "a", 1, "r1", "finished")]) == 1
    assert [d.id for d in journal.claim_deliveries(3.0, "x", 60.0, 10)] == ["a:1"]
    assert migrate(url) == (postgres_schema.LATEST, postgres_schema.LATEST), "a second migrate changed something"
    assert journal.users() == [ann] and journal.rollouts() == [record("r1")]
    journal.put_assets([host("p1", "a", 1.0)])
    assert journal.assets() == [host("p1", "a", 1.0)], "migrate did not add the asset table"


def test_a_newer_schema_is_refused_by_migrate_and_left_alone(backend: PostgresBackend) -> None:
    backend.set_schema(postgres_schema.LATEST + 1)
    with pytest.raises(SchemaError) as refused:
        migrate(parse_state_url(backend.url, Path("/")))
    assert "upgrade rollout" in str(refused.value), refused.value
    with backend.server.connect(backend.name) as db:
        assert db.execute("SELECT version FROM rollout.schema_version").fetchall() == [(postgres_schema.LATEST + 1,)]


def sqlite_history(path: Path) -> SqliteJournal:
    """An SQLite journal with two rollouts whose events interleave, and a lease."""
    journal = SqliteJournal(path)
    journal.create(record("r1", 1.0))
    journal.create(record("r2", 2.0, "rollback"))
    for rid, kind, plant in [("r1", "plant.started", "p1"), ("r2", "plant.started", "p2"), ("r1", "plant.done", "p1")]:
        journal.append(rid, Event(kind, plant, detail={"by": rid}, time=10.0))
    journal.acquire("p3", "r2", "deploy", 60.0)
    return journal


def test_import_copies_rollouts_and_events_in_order_and_twice_adds_nothing(
    backend: PostgresBackend, tmp_path: Path
) -> None:
    source = sqlite_history(tmp_path / "state.db")
    target = backend.open()
    target.create(record("r0", 0.5))
    assert import_sqlite(tmp_path / "state.db", target) == ["r1", "r2"]
    assert [r.id for r in target.rollouts()] == ["r0", "r1", "r2"] and target.rollout("r2") == record(
        "r2", 2.0, "rollback"
    )
    copied = [(e.rollout, e.event.kind, e.event.plant, e.event.detail, e.event.time) for e in target.events()]
    assert copied == [(e.rollout, e.event.kind, e.event.plant, e.event.detail, 10.0) for e in source.events()]
    assert target.locks() == [], "a lease of the old store was copied"
    assert import_sqlite(tmp_path / "state.db", target) == [], "a second import added rollouts"
    assert len(target.events()) == 3, "a second import added events"


def test_import_of_a_missing_file_is_refused_and_creates_nothing(backend: PostgresBackend, tmp_path: Path) -> None:
    with pytest.raises(Exception) as refused:
        import_sqlite(tmp_path / "nope.db", backend.open())
    assert "nope.db" in str(refused.value) and not (tmp_path / "nope.db").exists(), refused.value


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://ann:s3cret@db.example:5432/rollout",
        "postgres://ann:s3cret@db/rollout?sslmode=require",
        "postgresql://:s3cret@db/rollout",
        "postgresql://ann@db/rollout?password=s3cret",
    ],
)
def test_a_password_in_the_url_is_refused_and_never_shown(url: str) -> None:
    with pytest.raises(StateUrlError) as refused:
        parse_state_url(url, Path("/proj"))
    text = str(refused.value)
    assert "PGPASSFILE, ~/.pgpass or PGPASSWORD" in text and "s3cret" not in text and "***" in text, text


def test_the_password_comes_from_pgpassfile_or_pgpassword_and_is_never_shown(
    pg_server: PgServer, backend: PostgresBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = pg_server.url(backend.name, SECRET_USER)
    backend.run(
        f"GRANT USAGE ON SCHEMA rollout TO {SECRET_USER}; GRANT SELECT ON ALL TABLES IN SCHEMA rollout TO {SECRET_USER}"
    )
    for variable in ("PGPASSWORD", "PGPASSFILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.pgpass
    with pytest.raises(JournalError) as refused:
        PostgresJournal(url, url)
    assert url in str(refused.value) and "password" in str(refused.value), refused.value
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"127.0.0.1:{pg_server.port}:*:{SECRET_USER}:{SECRET}\n")
    passfile.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    PostgresJournal(url, url).close()
    monkeypatch.delenv("PGPASSFILE")
    monkeypatch.setenv("PGPASSWORD", SECRET)
    journal = PostgresJournal(url, url)
    journal.locks()
    journal.close()
    monkeypatch.setenv("PGPASSWORD", "wrong")
    with pytest.raises(JournalError) as refused:
        PostgresJournal(url, url)
    assert "password authentication failed" in str(refused.value) and SECRET not in str(refused.value)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql+psycopg://ann@db/rollout", "driver in the scheme"),
        ("postgresql://ann@db/rollout?nosuchoption=1", "not a PostgreSQL URL libpq takes"),
    ],
)
def test_a_postgresql_url_libpq_cannot_take_is_refused(url: str, message: str) -> None:
    with pytest.raises(StateUrlError) as refused:
        parse_state_url(url, Path("/proj"))
    assert message in str(refused.value) and "postgresql://user@host:port/database" in str(refused.value)


def test_libpq_options_pass_through(pg_server: PgServer, backend: PostgresBackend) -> None:
    url = parse_state_url(f"{backend.url}?sslmode=disable&application_name=ops-console", Path("/"))
    assert url.backend == "postgresql" and url.shown == f"{backend.url}?sslmode=disable&application_name=ops-console"
    journal = PostgresJournal(url.conninfo, url.shown)
    try:
        journal.locks()
        with pg_server.connect() as db:
            names = db.execute("SELECT application_name FROM pg_stat_activity WHERE datname = %s", (backend.name,))
            assert ("ops-console",) in names.fetchall()
    finally:
        journal.close()


def test_a_refused_connection_is_a_journal_error_that_names_the_url(pg_server: PgServer) -> None:
    url = f"postgresql://{TESTER}@127.0.0.1:{free_port()}/nothing"
    with pytest.raises(JournalError) as refused:
        PostgresJournal(parse_state_url(url, Path("/")).conninfo, url)
    assert url in str(refused.value) and "refused" in str(refused.value), refused.value


def test_a_dropped_database_is_a_journal_error_that_says_so(backend: PostgresBackend) -> None:
    journal = backend.open()
    backend.vanish()
    with pytest.raises(JournalError) as refused:  # on a connection the server closed
        journal.locks()
    assert "the connection to the server was lost" in str(refused.value), refused.value
    with pytest.raises(JournalError) as refused:  # then every new attempt
        journal.locks()
    assert f'database "{backend.name}" does not exist' in str(refused.value), refused.value


def test_the_cli_refuses_a_database_without_schema_and_says_to_migrate(
    mini: MiniProject, rollout: Callable[..., Result], bare: PostgresBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROLLOUT_STATE", bare.url)
    done = rollout("history", "-C", mini.root)
    assert done.code == 3 and "rollout state migrate" in done.err and "Traceback" not in done.text, done.text
    done = rollout("state", "migrate", "-C", mini.root, "--json")
    assert done.code == 0 and f'"after": {postgres_schema.LATEST}' in done.out, done.text
    done = rollout("history", "-C", mini.root, "--json")
    assert done.code == 0, done.text


def test_the_cli_imports_an_sqlite_journal_once(
    mini: MiniProject, rollout: Callable[..., Result], backend: PostgresBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqlite_history(mini.root / "old.db")
    monkeypatch.setenv("ROLLOUT_STATE", backend.url)
    done = rollout("state", "import", mini.root / "old.db", "-C", mini.root)
    assert done.code == 0 and "2 rollouts" in done.out, done.text
    done = rollout("state", "import", str(mini.root / "old.db"), "-C", mini.root, "--json")
    assert done.code == 0 and '"imported": []' in done.out, done.text
    done = rollout("state", "import", mini.root / "missing.db", "-C", mini.root)
    assert done.code == 2 and "missing.db" in done.err, done.text


def test_an_append_notifies_listeners_with_its_seq_only(backend: PostgresBackend) -> None:
    journal = backend.open()
    journal.create(record("r1"))
    with psycopg.connect(backend.url, autocommit=True) as listener:
        listener.execute("LISTEN rollout_events")
        big = {"output": "x" * 10_000}  # more than a notification may carry: only the seq goes
        one = journal.append("r1", Event("plant.started", "p1", detail=big))
        journal.acquire("p1", "r1", "deploy", 60.0)
        two = journal.append_releasing("r1", [Event("plant.done", "p1"), Event("plant.unlocked", "p1")], "p1", "r1")
        notes: list[tuple[str, str]] = []
        deadline = time.monotonic() + 10
        while len(notes) < 2 and time.monotonic() < deadline:
            notes += [(n.channel, n.payload) for n in listener.notifies(timeout=1.0, stop_after=1)]
    assert notes == [("rollout_events", str(one)), ("rollout_events", str(two[-1]))], notes


def listening_backends(backend: PostgresBackend) -> list[int]:
    with backend.server.connect(backend.name) as db:
        rows = db.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %'"
        ).fetchall()
    return [int(row[0]) for row in rows]


def test_a_waiter_whose_listening_connection_is_killed_polls_and_listens_again(
    backend: PostgresBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres_listen, "RECONNECT_EVERY", 0.0)
    journal, writer = backend.open(), backend.open()
    journal.create(record("r1"))
    seq = journal.append("r1", Event("rollout.created", ""))
    assert journal.wait(seq, 0.0) is False
    (listening,) = listening_backends(backend)
    backend.run(sql.SQL("SELECT pg_terminate_backend({})").format(sql.Literal(listening)))
    deadline = time.monotonic() + 10
    while listening in listening_backends(backend) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert listening not in listening_backends(backend), "the listening backend was not terminated"
    later = writer.append("r1", Event("plant.started", "p1"))  # announced to no one: the waiter must poll
    started = time.monotonic()
    assert journal.wait(seq, 10.0) is True and time.monotonic() - started < SEEN_WITHIN
    assert journal.wait(later, 0.0) is False  # listens anew
    again = listening_backends(backend)
    assert len(again) == 1 and again != [listening], f"no new listening connection: {again}"
    started = time.monotonic()
    last = writer.append("r1", Event("plant.done", "p1"))
    assert journal.wait(later, 10.0) is True and time.monotonic() - started < SEEN_WITHIN
    assert [e.seq for e in journal.events_after(later)] == [last]


def test_ordinary_events_commit_asynchronously_durable_ones_synchronously_and_sync_flushes(
    backend: PostgresBackend,
) -> None:
    # A trigger stamps each stored event with how its transaction commits.
    backend.run(
        "CREATE FUNCTION public.stamp() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "NEW.host := current_setting('synchronous_commit'); RETURN NEW; END $$"
    )
    backend.run("CREATE TRIGGER stamp BEFORE INSERT ON rollout.events FOR EACH ROW EXECUTE FUNCTION public.stamp()")
    journal = backend.open()
    journal.create(record("r1"))
    journal.append("r1", Event("plant.started", "p1"))
    journal.append("r1", Event("plant.before", "p1"))
    journal.append_releasing("r1", [Event("plant.done", "p1")], "p1", "r1")
    stamped = {e.event.kind: e.event.host for e in journal.events()}
    assert stamped == {"plant.started": "off", "plant.before": "on", "plant.done": "on"}, stamped
    journal.append("r1", Event("check.result", "p1"))
    with backend.server.connect(backend.name) as db:
        written = db.execute("SELECT pg_current_wal_insert_lsn()").fetchone()
        journal.sync()
        flushed = db.execute("SELECT pg_current_wal_flush_lsn() >= %s::pg_lsn", (written[0] if written else None,))
        assert flushed.fetchone() == (True,), "sync left an asynchronous commit unflushed"
        assert db.execute("SELECT count(*) FROM rollout.fences").fetchone() == (0,), "the flush left a row behind"
    assert [e.event.kind for e in journal.events()][-1] == "check.result"


def test_a_transaction_left_open_is_ended_by_the_server(backend: PostgresBackend) -> None:
    """A writer stopped inside a transaction would hold the append lock for every writer."""
    journal = backend.open()
    with journal._connection("read") as db:  # noqa: SLF001 (the pool's own session settings)
        row = db.execute("SHOW idle_in_transaction_session_timeout").fetchone()
    assert row == ("30s",), row


def test_a_server_slow_to_answer_new_connections_is_waited_for_not_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every pooled connection busy and a new one timing out (a machine loaded by a rollout of a
    thousand plants) is a wait for the pool, not the state's refusal; only a pool that stays busy
    fails the write, saying both."""
    monkeypatch.setattr(postgres_pool, "_BUSY_WAIT", 1.0)
    with socket.socket() as hole:  # accepts and never answers: a connection to it times out
        hole.bind(("127.0.0.1", 0))
        hole.listen(64)
        conninfo = f"postgresql://nobody@127.0.0.1:{hole.getsockname()[1]}/none?connect_timeout=1"
        pool = postgres_pool.POOLS.take(conninfo)
        try:
            began = time.monotonic()
            with pytest.raises(JournalError) as raised, postgres_pool.lend(pool, conninfo, "write the state"):
                pass
            waited = time.monotonic() - began
        finally:
            postgres_pool.POOLS.give_back(conninfo)
    assert "no free connection within 3 s; a new connection timed out too" in str(raised.value), raised.value
    assert waited >= 3.0, f"gave up after {waited:.1f} s, before the busy pool's wait"
