"""Agent tokens this server instance has let in, kept in memory so that an agent's every request
(a long poll, a beat, an events post: ten thousand agents make hundreds a second) is not also a
query of the users table.

What is kept is re-checked against the state together, once a ``CHECK_S``, in one look; a token
found revoked (or a look that fails) is forgotten, so a revoked agent token is refused by every
instance within about a second. Only ``agent`` tokens are kept: a person's token and every
session are looked up on each request, and their revocation takes effect at once. Keyed by the
token's SHA-256, as the state keeps it. Used from the event loop only."""

from __future__ import annotations

import asyncio

from fastapi.concurrency import run_in_threadpool

from rollout.state.access import User
from rollout.state.journal import Journal

CHECK_S = 1.0
"""How often the kept tokens are checked against the state."""
MAX_KEPT = 100_000
"""Tokens kept at most; past it all are forgotten and looked up again."""


class AgentTokens:
    def __init__(self, journal: Journal, check_s: float = CHECK_S) -> None:
        self.journal = journal
        self.check_s = check_s
        self._users: dict[str, User] = {}
        self._task: asyncio.Task[None] | None = None

    def get(self, digest: str) -> User | None:
        return self._users.get(digest)

    def keep(self, digest: str, user: User) -> None:
        """Keep an agent's user just found active in the state (anyone else's is not kept)."""
        if user.role != "agent":
            return
        if len(self._users) >= MAX_KEPT:
            self._users.clear()
        self._users[digest] = user
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self._users:
            await asyncio.sleep(self.check_s)
            await self.check()

    async def check(self) -> None:
        """Forget every kept token the state no longer has active (all of them if it cannot tell)."""
        kept = list(self._users)
        try:
            active = await run_in_threadpool(self.journal.active_tokens, kept)
        except Exception:  # each request looks its token up again and meets the failure itself
            active = set()
        for digest in kept:
            if digest not in active:
                self._users.pop(digest, None)
