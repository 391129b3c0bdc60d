"""Who may use the console and the API: users with one-time tokens, and signed-in sessions.

Only the SHA-256 of a token is stored; the token itself is shown once, when the user is
added. Nothing here prints or exits.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time

from rollout.config.project import Project
from rollout.core.access import SCOPED, Principal
from rollout.errors import ConfigError
from rollout.state.access import ROLES, Session, User
from rollout.state.journal import Journal

TOKEN_PREFIX = "rol_"
SESSION_TTL = 12 * 3600.0
"""A browser signs in again after a shift."""
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def hash_token(token: str) -> str:
    """How a token is kept: its SHA-256 (a token is 256 random bits, a slow hash adds nothing)."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def add_user(project: Project, journal: Journal, name: str, role: str, plants: list[str], by: str) -> tuple[User, str]:
    """Record a user and return it with its token, which is not kept anywhere."""
    if not _NAME.match(name):
        raise ConfigError.one("NAME", "not a user name", expected="letters, digits and . _ @ -, 64 at most", found=name)
    if role not in ROLES:
        raise ConfigError.one("--role", f"no role {role!r}", expected="one of: " + ", ".join(ROLES))
    if role in SCOPED and not plants:
        raise ConfigError.one("--plant", f"a {role} user needs the plants it may reach", expected="--plant P")
    if role not in SCOPED and plants:
        raise ConfigError.one("--plant", f"a {role} reaches every plant", expected="no --plant for this role")
    if role == "agent" and len(plants) != 1:
        raise ConfigError.one("--plant", "an agent serves exactly one plant", expected="one --plant P")
    names = tuple(project.plant(p).name for p in plants)
    token = new_token()
    user = User(name, role, names, hash_token(token), time.time(), by)
    if not journal.add_user(user):
        raise ConfigError.one(
            "NAME", f"user {name} exists already", expected="a new name, or 'rollout user revoke' first"
        )
    return user, token


def revoke_user(journal: Journal, name: str) -> None:
    if not journal.revoke_user(name, time.time()):
        raise ConfigError.one("NAME", f"no active user {name!r}", expected="a name from 'rollout user list'")


def principal(user: User) -> Principal:
    return Principal(user.name, user.role, user.plants)


def token_digest(token: str) -> str | None:
    """How the state keys a bearer token (None: not one of rollout's tokens)."""
    return hash_token(token) if token.startswith(TOKEN_PREFIX) else None


def by_token(journal: Journal, token: str) -> User | None:
    """The active user of a bearer token, or None."""
    digest = token_digest(token)
    return None if digest is None else journal.user_by_token(digest)


def sign_in(journal: Journal, token: str) -> tuple[User, str] | None:
    """A new session for the user of ``token`` (its cookie value returned), or None."""
    user = by_token(journal, token)
    if user is None or user.role == "agent":  # an agent has no business in the pages
        return None
    cookie = secrets.token_urlsafe(32)
    now = time.time()
    journal.add_session(Session(hash_token(cookie), user.name, now, now + SESSION_TTL))
    return user, cookie


def by_session(journal: Journal, cookie: str) -> User | None:
    found = journal.session(hash_token(cookie), time.time())
    return found[1] if found else None


def csrf_token(cookie: str) -> str:
    """The form token of a session: derived from its cookie, so every instance checks it alike
    and a page of another site, which cannot read the cookie, cannot make it."""
    return hmac.new(cookie.encode(), b"rollout csrf", hashlib.sha256).hexdigest()


def csrf_ok(cookie: str, sent: str) -> bool:
    return hmac.compare_digest(csrf_token(cookie), sent)
