"""The transport interface: run a command on a host (with bytes on its stdin), close."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from rollout.errors import RolloutError

MAX_OUTPUT = 4000
"""Characters of output kept for messages and events."""
MAX_CAPTURE = 4 * 1024 * 1024
"""Characters of a command's output kept at all: layout reads need whole manifests."""


@dataclass(frozen=True)
class CommandResult:
    """What a command did on a host (output capped at ``MAX_CAPTURE``; ``output()`` is for people)."""

    host: str
    command: str
    exit_code: int
    stdout: str
    stderr: str
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def output(self) -> str:
        return trim((self.stdout + ("\n" + self.stderr if self.stderr else "")).strip())


class TransportError(RolloutError):
    """The host could not be reached or did not answer in time; nothing is known of the command."""

    def __init__(self, host: str, reason: str, timed_out: bool = False) -> None:
        self.host = host
        self.reason = reason
        self.timed_out = timed_out
        super().__init__(f"{host}: {reason}")


def capture(text: str) -> str:
    return trim(text, MAX_CAPTURE)


def trim(text: str, limit: int = MAX_OUTPUT) -> str:
    return text if len(text) <= limit else "..." + text[-(limit - 3) :]


class Transport(ABC):
    """One connection to one host, safe to share: several threads may run commands at once."""

    name: str

    @abstractmethod
    def run(self, script: str, timeout: float, stdin: bytes = b"") -> CommandResult:
        """Run a POSIX shell script fed ``stdin``; a non-zero exit is a result, not an error.

        The whole exchange, input included, ends within ``timeout`` seconds or raises.
        """

    @abstractmethod
    def close(self) -> None:
        """Release the connection; safe to call twice."""
