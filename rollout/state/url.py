"""State URLs: which backend holds the state and where, parsed once and opened by one factory.

``sqlite:///<path>`` is a file, relative to the project root (``sqlite:///.rollout/state.db``,
the default) or absolute with a fourth slash (``sqlite:////var/lib/rollout/state.db``); the
path is taken as written, without percent-decoding. ``postgresql://user@host:port/db`` (or
``postgres://``) is a PostgreSQL database; libpq options in the query (``sslmode=verify-full``)
go to libpq as they are, and a password never comes in the URL: libpq takes it from
``PGPASSFILE``, ``~/.pgpass`` or ``PGPASSWORD``. A URL is only ever shown with its password masked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from rollout.core.clock import Clock
from rollout.state.journal import Journal
from rollout.state.sqlite import SqliteJournal, sqlite_version

SQLITE_FORMS = "sqlite:///<path relative to the project> or sqlite:////<absolute path>"
POSTGRES_FORM = "postgresql://user@host:port/database[?libpq options]"
STATE_FORMS = f"{SQLITE_FORMS}, or {POSTGRES_FORM}"
POSTGRES_SCHEMES = ("postgresql", "postgres")
PASSWORD_SOURCES = "the password comes only from PGPASSFILE, ~/.pgpass or PGPASSWORD, never from the URL"
_PASSWORD = re.compile(r"(?P<head>//[^/?#@:]*:).*@")
"""The password of ``scheme://user:password@host``, up to the last ``@`` (over-masking is safe)."""
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&]password=)[^&#]*", re.IGNORECASE)
_MAX_URL = 4096


class StateUrlError(ValueError):
    """A state URL this build cannot use: what is wrong, and what would be right."""

    def __init__(self, message: str, expected: str, found: str) -> None:
        self.message = message
        self.expected = expected
        self.found = found
        super().__init__(f"{message}; expected {expected}; found {found}")


@dataclass(frozen=True)
class StateUrl:
    """A parsed state URL: its backend and, for SQLite, the file it names (absolute)."""

    backend: str
    path: Path
    """SQLite: the file (absolute). PostgreSQL: ``Path()``, unused."""
    shown: str
    """The URL as it may be printed: the password, if any, masked."""
    conninfo: str = ""
    """PostgreSQL: the URL as libpq takes it (it holds no password)."""

    def exists(self) -> bool:
        """The state is there already: an SQLite file is created by the first verb, a
        PostgreSQL database never by rollout (``rollout state migrate`` gives it its schema)."""
        return self.backend != "sqlite" or self.path.exists()


def mask(url: str) -> str:
    """``url`` with any password replaced by ``***``; safe to print whatever ``url`` holds."""
    url = _PASSWORD.sub(lambda m: f"{m.group('head')}***@", url)
    return _QUERY_PASSWORD.sub(lambda m: f"{m.group('head')}***", url)


def parse_state_url(url: str, base: Path) -> StateUrl:
    """The state URL ``url``; a relative SQLite path is relative to ``base`` (the project root)."""
    shown = mask(url)
    if len(url) > _MAX_URL or "\0" in url or not url.isprintable():
        raise StateUrlError("not a usable URL", f"a URL of printable characters, {STATE_FORMS}", repr(shown)[:80])
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if scheme in POSTGRES_SCHEMES and sep:
        return StateUrl("postgresql", Path(), shown, _postgres_conninfo(f"{scheme}://{rest}", shown))
    if scheme.split("+")[0] in POSTGRES_SCHEMES and sep:
        raise StateUrlError("a driver in the scheme is not for rollout", POSTGRES_FORM, repr(shown))
    if scheme != "sqlite" or not sep:
        raise StateUrlError("not a state URL this rollout knows", STATE_FORMS, repr(shown))
    return StateUrl("sqlite", _sqlite_path(rest, shown, base), shown)


def _postgres_conninfo(url: str, shown: str) -> str:
    """``url`` as libpq takes it, once it is known to hold no password and to parse."""
    from psycopg import ProgrammingError  # imported here: an SQLite state never loads the driver
    from psycopg.conninfo import conninfo_to_dict

    try:
        userinfo = urlsplit(url).netloc.rpartition("@")[0]
        options = conninfo_to_dict(url)
    except (ValueError, ProgrammingError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StateUrlError(f"not a PostgreSQL URL libpq takes ({mask(reason)})", POSTGRES_FORM, repr(shown)) from None
    if ":" in userinfo or "password" in options:
        raise StateUrlError(f"a password in the state URL: {PASSWORD_SOURCES}", POSTGRES_FORM, repr(shown))
    return url


def _sqlite_path(rest: str, shown: str, base: Path) -> Path:
    host, slash, path = rest.partition("/")
    if host or not slash:
        raise StateUrlError("an SQLite URL names no host (three slashes after 'sqlite:')", SQLITE_FORMS, repr(shown))
    parts = urlsplit(f"file:///{path}")
    if parts.query or parts.fragment:
        raise StateUrlError("an SQLite URL takes no '?' options or '#' fragment", SQLITE_FORMS, repr(shown))
    if not path or path.endswith("/"):
        raise StateUrlError("an SQLite URL needs the path of a file", SQLITE_FORMS, repr(shown))
    return Path(path) if path.startswith("/") else base / path


def open_url(url: StateUrl, clock: Clock | None = None) -> Journal:
    """Open the state that ``url`` names: an SQLite file is created or upgraded if need be; a
    PostgreSQL database must have the current schema (``SchemaError`` says to migrate)."""
    if url.backend == "postgresql":
        from rollout.state.postgres import PostgresJournal  # the driver loads for PostgreSQL states only

        return PostgresJournal(url.conninfo, url.shown, clock)
    return SqliteJournal(url.path, clock)


def migrate_url(url: StateUrl) -> tuple[int, int]:
    """Create or upgrade the schema of the state ``url`` names: (version before, version after).

    A newer schema is refused (``SchemaError``) and left as it is."""
    if url.backend == "postgresql":
        from rollout.state.postgres import migrate

        return migrate(url.conninfo, url.shown)
    before = sqlite_version(url.path)
    return before, SqliteJournal(url.path).schema()
