"""The embedded default: each host is a folder on this machine; commands run in a shell here."""

from __future__ import annotations

import subprocess
import time

from rollout.transports.base import CommandResult, Transport, TransportError, capture


class LocalTransport(Transport):
    name = "local"

    def __init__(self, host: str) -> None:
        self.host = host

    def run(self, script: str, timeout: float, stdin: bytes = b"") -> CommandResult:
        started = time.monotonic()
        try:
            done = subprocess.run(
                ["sh", "-c", script],
                capture_output=True,
                timeout=timeout,
                input=stdin,
                start_new_session=True,  # a service the script starts must not die with us
            )
        except subprocess.TimeoutExpired:
            raise TransportError(self.host, f"command timed out after {timeout:g}s", timed_out=True) from None
        except OSError as exc:
            raise TransportError(self.host, f"cannot run a shell: {exc}") from None
        return CommandResult(
            self.host,
            script,
            done.returncode,
            capture(done.stdout.decode("utf-8", "replace")),
            capture(done.stderr.decode("utf-8", "replace")),
            time.monotonic() - started,
        )

    def close(self) -> None:
        pass
