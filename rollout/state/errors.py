"""The state's errors, in a module of their own: the command line maps them to exit codes
without loading a backend or the event models."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rollout.errors import RolloutError

if TYPE_CHECKING:
    from rollout.state.journal import Lock


class JournalError(RolloutError):
    """The state cannot be written or read; rollout stops rather than act unrecorded."""


class SchemaError(JournalError):
    """The state was written by a newer rollout than this one; this one must not touch it."""


class LockedError(RolloutError):
    """A plant is locked by someone else."""

    def __init__(self, plant: str, lock: Lock) -> None:
        self.plant = plant
        self.lock = lock
        super().__init__(f"plant {plant} is locked by {lock.describe()}")
