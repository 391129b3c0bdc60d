"""SSH through Fabric: key authentication, host keys verified against a known_hosts file."""

from __future__ import annotations

import io
import shlex
import time
from pathlib import Path

import paramiko
from fabric import Connection
from invoke.exceptions import CommandTimedOut

from .base import CommandResult, Transport, TransportError, capture


class SshTransport(Transport):
    name = "ssh"

    def __init__(
        self,
        host: str,
        address: str,
        port: int,
        user: str | None,
        key_file: str | None,
        known_hosts: Path | None,
        connect_timeout: float,
    ) -> None:
        """``known_hosts=None`` turns host-key verification off; callers must say so loudly."""
        self.host = host
        connect_kwargs: dict[str, object] = {
            "look_for_keys": key_file is None,
            "allow_agent": key_file is None,
            "banner_timeout": connect_timeout,
            "auth_timeout": connect_timeout,
        }
        if key_file:
            connect_kwargs["key_filename"] = [str(Path(key_file).expanduser())]
        self.conn = Connection(
            host=address, port=port, user=user, connect_timeout=connect_timeout, connect_kwargs=connect_kwargs
        )
        client = self.conn.client
        if known_hosts is None:
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        else:
            # Fabric accepts unknown hosts by default; rollout never does unless told to.
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
            try:
                client.load_host_keys(str(known_hosts))
            except OSError as exc:
                raise TransportError(host, f"cannot read known_hosts {known_hosts}: {exc.strerror}") from None

    def _connect(self) -> None:
        if self.conn.is_connected:
            return
        try:
            self.conn.open()
        except paramiko.BadHostKeyException:
            raise TransportError(self.host, "host key does not match known_hosts (possible impersonation)") from None
        except paramiko.SSHException as exc:
            raise TransportError(self.host, f"ssh: {exc}") from None
        except (OSError, EOFError) as exc:
            raise TransportError(self.host, f"unreachable: {exc}") from None

    def run(self, script: str, timeout: float) -> CommandResult:
        self._connect()
        started = time.monotonic()
        try:
            result = self.conn.run(
                "sh -c " + shlex.quote(script), hide=True, warn=True, timeout=timeout, in_stream=False
            )
        except CommandTimedOut:
            raise TransportError(self.host, f"command timed out after {timeout:g}s", timed_out=True) from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.close()
            raise TransportError(self.host, f"connection lost: {exc or type(exc).__name__}") from None
        return CommandResult(
            self.host,
            script,
            result.exited,
            capture(result.stdout),
            capture(result.stderr),
            time.monotonic() - started,
        )

    def put(self, data: bytes, path: str, timeout: float) -> None:
        self._connect()
        try:
            sftp = self.conn.sftp()
            sftp.get_channel().settimeout(timeout)
            sftp.putfo(io.BytesIO(data), path, confirm=True)
        except TimeoutError:
            self.close()
            raise TransportError(self.host, f"transfer timed out after {timeout:g}s", timed_out=True) from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.close()
            raise TransportError(self.host, f"transfer failed: {exc or type(exc).__name__}") from None

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:  # closing a dead connection may raise anything; it is closed either way
            pass
