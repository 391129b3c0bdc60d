"""What every request of one server instance shares: the project, its state, the job runner."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

from fastapi import Request

from rollout.config.project import Project
from rollout.service.jobs import JobRunner
from rollout.state.journal import Journal
from rollout.web.agent_beats import BeatWriter
from rollout.web.agent_tokens import AgentTokens
from rollout.web.agent_watch import OrderWatch

FAILURE_WINDOW = 900.0
"""Failed sign-ins of one address counted over this many seconds."""
MAX_FAILURES = 10
"""More failed sign-ins than this in the window: the address is refused (429) until they age out."""


@dataclass
class Throttle:
    """Failed sign-ins per client address: each one waits longer before it is answered.

    Kept in the instance: a guesser spread over instances behind a balancer meets each
    one's limit, and a token's 256 random bits make guessing hopeless anyway; the delay
    is there to make a brute-force run noisy and slow, not to be the only defence."""

    failures: dict[str, deque[float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def delay(self, address: str) -> float:
        """Seconds to wait before answering the next failure of ``address``."""
        return min(8.0, 0.25 * 2.0 ** len(self._recent(address)))

    def blocked(self, address: str) -> bool:
        return len(self._recent(address)) >= MAX_FAILURES

    def failed(self, address: str) -> None:
        with self.lock:
            self.failures.setdefault(address, deque(maxlen=MAX_FAILURES * 2)).append(time.monotonic())

    def succeeded(self, address: str) -> None:
        with self.lock:
            self.failures.pop(address, None)

    def _recent(self, address: str) -> list[float]:
        now = time.monotonic()
        with self.lock:
            return [t for t in self.failures.get(address, ()) if now - t < FAILURE_WINDOW]


@dataclass
class Console:
    project: Project
    journal: Journal
    runner: JobRunner
    secure: bool
    """Served over TLS: cookies are marked Secure."""
    throttle: Throttle = field(default_factory=Throttle)
    orders: OrderWatch = field(init=False)
    """The agents waiting on this instance for work, looked for together."""
    beats: BeatWriter = field(init=False)
    """The agents' heartbeats, gathered and written together."""
    agent_tokens: AgentTokens = field(init=False)
    """The agent tokens let in lately, re-checked together."""

    def __post_init__(self) -> None:
        self.orders = OrderWatch(self.journal)
        self.beats = BeatWriter(self.journal)
        self.agent_tokens = AgentTokens(self.journal)


async def console(request: Request) -> Console:
    found: Console = request.app.state.console
    return found
