"""The embedded default: each host is a folder on this machine; commands run in a shell here."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

from .base import CommandResult, Transport, TransportError, capture


class LocalTransport(Transport):
    name = "local"

    def __init__(self, host: str) -> None:
        self.host = host

    def run(self, script: str, timeout: float) -> CommandResult:
        started = time.monotonic()
        try:
            done = subprocess.run(
                ["sh", "-c", script],
                capture_output=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
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

    def put(self, data: bytes, path: str, timeout: float) -> None:
        target = Path(path)
        try:
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".put-")
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, target)
        except OSError as exc:
            raise TransportError(self.host, f"cannot write {path}: {exc.strerror}") from None

    def close(self) -> None:
        pass
