"""State URLs: which backend holds the state and where, parsed once and opened by one factory.

``sqlite:///<path>`` is a file, relative to the project root (``sqlite:///.rollout/state.db``,
the default) or absolute with a fourth slash (``sqlite:////var/lib/rollout/state.db``); the
path is taken as written, without percent-decoding. ``postgresql://`` URLs are recognised
but this build has no PostgreSQL backend. A URL is only ever shown with its password masked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from rollout.core.clock import Clock
from rollout.state.journal import Journal
from rollout.state.sqlite import SqliteJournal

SQLITE_FORMS = "sqlite:///<path relative to the project> or sqlite:////<absolute path>"
POSTGRES_SCHEMES = ("postgresql", "postgres")
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
    shown: str
    """The URL as it may be printed: the password, if any, masked."""


def mask(url: str) -> str:
    """``url`` with any password replaced by ``***``; safe to print whatever ``url`` holds."""
    url = _PASSWORD.sub(lambda m: f"{m.group('head')}***@", url)
    return _QUERY_PASSWORD.sub(lambda m: f"{m.group('head')}***", url)


def parse_state_url(url: str, base: Path) -> StateUrl:
    """The state URL ``url``; a relative SQLite path is relative to ``base`` (the project root)."""
    shown = mask(url)
    if len(url) > _MAX_URL or "\0" in url or not url.isprintable():
        raise StateUrlError("not a usable URL", f"a URL of printable characters, {SQLITE_FORMS}", repr(shown)[:80])
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if scheme.split("+")[0] in POSTGRES_SCHEMES and sep:
        raise StateUrlError(
            "a PostgreSQL URL; this build of rollout keeps its state in SQLite only", SQLITE_FORMS, repr(shown)
        )
    if scheme != "sqlite" or not sep:
        raise StateUrlError("not a state URL this rollout knows", SQLITE_FORMS, repr(shown))
    return StateUrl("sqlite", _sqlite_path(rest, shown, base), shown)


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
    """Open (creating or upgrading if need be) the state that ``url`` names."""
    return SqliteJournal(url.path, clock)
