"""What the state keeps for plants run by their agents: the work orders published to them, the
events they send back, their heartbeats, and the content-addressed blobs (bundle files, bundle
indexes, the plant's kit) they fetch by hash.

The centre and the agents never meet: the orchestrator publishes an order here and reads the
agent's events from here; ``rollout serve`` hands the order to the agent and stores what the
agent sends. An agent's event is keyed (order, seq), so an outbox replayed after a reconnect
is stored once. A blob is keyed by its SHA-256, so a file that a thousand plants share is
stored once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

ORDER_STATES = ("pending", "taken", "done", "abandoned")
"""pending: published, no agent took it yet; taken: an agent runs it; done: its result is in;
abandoned: the centre stopped waiting (the agent was silent past its plant's ``agent_timeout``)."""


@dataclass(frozen=True)
class AgentOrder:
    """One work order for one plant's agent, as the state keeps it."""

    id: str
    plant: str
    rollout: str
    action: str
    body: str
    """The order as JSON (``rollout.core.agentwork.Assignment``)."""
    state: str
    created: float
    taken: float | None = None
    result: str | None = None
    """The agent's result as JSON, once done."""
    updated: float = 0.0

    @property
    def open(self) -> bool:
        return self.state in ("pending", "taken")


@dataclass(frozen=True)
class OrderState:
    """Where an order is, without its body: what a rollout following hundreds of orders looks at
    four times a second (the bodies, a plant's whole assignment each, would be most of it)."""

    id: str
    state: str
    taken: float | None = None
    result: str | None = None


@dataclass(frozen=True)
class Heartbeat:
    """The last word of a plant's agent."""

    plant: str
    agent: str
    at: float
    detail: str
    """JSON: the agent's version, node, the order it runs and its outbox's length."""


class AgentStore(ABC):
    """The agent part of the state; ``Journal`` inherits it. Each call is one transaction."""

    @abstractmethod
    def put_blobs(self, blobs: Mapping[str, bytes]) -> None:
        """Keep each blob under its hash; one already kept is left as it is (same hash, same bytes)."""

    @abstractmethod
    def missing_blobs(self, hashes: Sequence[str]) -> set[str]:
        """Those of ``hashes`` not kept yet (what a publisher still has to send)."""

    @abstractmethod
    def blob(self, digest: str) -> bytes | None:
        """The blob of that hash, or None."""

    @abstractmethod
    def publish(self, order: AgentOrder, blobs: Sequence[str]) -> AgentOrder:
        """Record ``order`` (state pending) with the hashes of every blob it needs, and return it;
        an order of the same id already recorded is returned unchanged (a resumed run attaches)."""

    @abstractmethod
    def order(self, order_id: str) -> AgentOrder | None:
        """The order of that id, or None."""

    @abstractmethod
    def orders(self, plant: str | None = None, rollout: str | None = None) -> list[AgentOrder]:
        """Orders in order of creation, kept to ``plant`` and ``rollout`` where given."""

    @abstractmethod
    def next_order(self, plant: str) -> AgentOrder | None:
        """The oldest open order of ``plant``: a taken one comes back to an agent that restarted."""

    @abstractmethod
    def take_order(self, order_id: str, agent: str) -> AgentOrder | None:
        """Mark an open order taken (again, for a restarted agent) and return it; None if it is not open."""

    @abstractmethod
    def finish_order(self, order_id: str, state: str, result: str | None) -> bool:
        """Close an open order as ``done`` (with the agent's result) or ``abandoned``; False if it
        was closed already (the first close wins: a late result never reopens an abandoned order)."""

    @abstractmethod
    def order_needs(self, plant: str, digest: str) -> bool:
        """Whether an order of ``plant`` needs the blob ``digest`` (an agent may fetch only those)."""

    @abstractmethod
    def add_order_events(self, order_id: str, events: Sequence[tuple[int, str]]) -> int:
        """Keep the agent's events ``(seq, JSON)`` of the order; a seq already kept is left as it is.
        Returns the highest seq up to which every seq from 1 is kept (what the agent may drop)."""

    @abstractmethod
    def order_events(self, order_id: str, after: int = 0) -> list[tuple[int, str]]:
        """The order's events after ``after``, by seq."""

    @abstractmethod
    def events_of_orders(self, after: Mapping[str, int]) -> dict[str, list[tuple[int, str]]]:
        """``order_events`` of many orders in one look: order id -> its events after ``after[id]``, by
        seq (an order with none new is left out). One orchestrator follows all its plants' orders so."""

    @abstractmethod
    def order_states(self, order_ids: Sequence[str]) -> dict[str, OrderState]:
        """Where the orders of those ids that exist are, by id."""

    @abstractmethod
    def open_plants(self, plants: Sequence[str]) -> set[str]:
        """Those of ``plants`` with an open order (what a server's waiting agents look for at once)."""

    @abstractmethod
    def beat(self, *beats: Heartbeat) -> None:
        """Record plant agents' heartbeats, each replacing its plant's last, in one write (a server
        gathers its agents' beats and writes them together)."""

    @abstractmethod
    def heartbeats(self) -> dict[str, Heartbeat]:
        """Every plant's last heartbeat, by plant."""
