"""Who may do what, and to which plants: the one policy every HTTP request is checked against. Pure.

Roles are those of DESIGN.md. ``plant-it`` and ``agent`` are scoped to the plants listed for
them; the other roles reach every plant. A scoped user never learns that another plant
exists: lists are cut to its plants before they are shown, and a request naming another
plant is refused exactly as one naming no plant at all would be for it (403).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Action = Literal["read", "rollback", "restore", "verify", "approve", "resume", "abort", "users", "agent"]

_ON_PLANTS: frozenset[Action] = frozenset({"read", "rollback", "restore", "verify"})
"""What plant IT does on its own plants: see, roll back, restore a host, check for drift."""
_ALLOWED: dict[str, frozenset[Action]] = {
    "viewer": frozenset({"read"}),
    "plant-it": _ON_PLANTS,
    "release-engineer": _ON_PLANTS | {"approve", "resume", "abort"},
    "admin": _ON_PLANTS | {"approve", "resume", "abort", "users"},
    "agent": frozenset({"agent"}),
}
SCOPED = ("plant-it", "agent")
"""Roles that reach only their listed plants."""


@dataclass(frozen=True)
class Principal:
    """Who a request comes from, as the policy needs it."""

    name: str
    role: str
    plants: tuple[str, ...] = ()

    @property
    def scoped(self) -> bool:
        return self.role in SCOPED

    def may(self, action: Action, plant: str | None = None) -> bool:
        """Whether this principal may take ``action`` (on ``plant`` where it is about one)."""
        if action not in _ALLOWED.get(self.role, frozenset()):
            return False
        return plant is None or self.sees(plant)

    def sees(self, plant: str) -> bool:
        """Whether ``plant`` is in this principal's reach (every plant for an unscoped role)."""
        return not self.scoped or plant in self.plants

    def visible(self, plants: list[str]) -> list[str]:
        """``plants`` cut to those in reach, in their order."""
        return [p for p in plants if self.sees(p)]

    def may_see_rollout(self, plants: list[str]) -> bool:
        """A rollout is in reach when one of its plants is (its other plants stay hidden)."""
        return not self.scoped or any(self.sees(p) for p in plants)
