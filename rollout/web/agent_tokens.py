"""Agent tokens seen lately by this server instance, so that an agent's every request (a long
poll, a beat, an events post: ten thousand agents make thousands a second) is not also a query
of the users table.

Only ``agent`` tokens are kept, for ``AGENT_TOKEN_S``: a revoked agent token may be let in by an
instance that saw it within that second; a person's token and every session are looked up on
each request, so their revocation takes effect at once. Keyed by the token's SHA-256, as the
state keeps it. Used from the event loop only."""

from __future__ import annotations

import time

from rollout.state.access import User

AGENT_TOKEN_S = 1.0
"""How long an agent token's user is taken from memory before the state is asked again."""
MAX_KEPT = 100_000
"""Entries kept at most; past it the expired go, and if none has, all of them."""


class AgentTokens:
    def __init__(self, ttl: float = AGENT_TOKEN_S) -> None:
        self.ttl = ttl
        self._users: dict[str, tuple[float, User]] = {}

    def get(self, digest: str) -> User | None:
        found = self._users.get(digest)
        if found is None:
            return None
        if time.monotonic() - found[0] >= self.ttl:
            del self._users[digest]
            return None
        return found[1]

    def keep(self, digest: str, user: User) -> None:
        if user.role != "agent":
            return
        if len(self._users) >= MAX_KEPT:
            now = time.monotonic()
            self._users = {k: v for k, v in self._users.items() if now - v[0] < self.ttl}
            if len(self._users) >= MAX_KEPT:
                self._users.clear()
        self._users[digest] = (time.monotonic(), user)
