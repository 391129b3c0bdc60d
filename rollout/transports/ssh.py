"""SSH through Fabric: key authentication, host keys verified against a known_hosts file."""

from __future__ import annotations

import functools
import select
import shlex
import threading
import time
from pathlib import Path

import paramiko
from fabric import Connection

from rollout.transports.base import CommandResult, Transport, TransportError, capture


class SshTransport(Transport):
    """One SSH connection to one host, shared by every thread that works on it.

    A host that serves several layers is read and changed by one thread per layer: they
    share this connection, each command on a channel of its own (SSH multiplexes them).
    Opening and closing the connection happen under a lock: two threads authenticating on
    one client at once is what broke such hosts before."""

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
        self._guard = threading.Lock()
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
            client.set_missing_host_key_policy(_KnownHostsOnly(_known_hosts(host, known_hosts)))

    def _connect(self) -> paramiko.Transport:
        with self._guard:
            return self._open()

    def _open(self) -> paramiko.Transport:
        if self.conn.is_connected and self.conn.transport is not None:
            return self.conn.transport
        try:
            self.conn.open()
        except paramiko.BadHostKeyException:
            raise TransportError(self.host, "host key does not match known_hosts (possible impersonation)") from None
        except _UnknownHost as exc:
            raise TransportError(self.host, str(exc)) from None
        except paramiko.SSHException as exc:
            raise TransportError(self.host, f"ssh: {exc}") from None
        except (OSError, EOFError) as exc:
            raise TransportError(self.host, f"unreachable: {exc}") from None
        if self.conn.transport is None:
            raise TransportError(self.host, "unreachable: no SSH session")
        return self.conn.transport

    def run(self, script: str, timeout: float, stdin: bytes = b"") -> CommandResult:
        # One paramiko channel per command, bounded by one deadline: invoke's runner (behind
        # Fabric's run) starts threads per command and feeds stdin in small sleeping reads.
        transport = self._connect()
        started = time.monotonic()
        deadline = started + timeout
        try:
            channel = transport.open_session(timeout=timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self._drop(transport)
            if time.monotonic() >= deadline:  # paramiko says only "Timeout opening channel."
                raise TransportError(
                    self.host, f"timed out after {timeout:g}s opening a session (the host does not answer)", True
                ) from None
            raise TransportError(self.host, f"connection lost: {exc or type(exc).__name__}") from None
        try:
            channel.settimeout(timeout)
            _start(channel, script, stdin)
            stdout, stderr = _drain(channel, deadline)
            code = channel.recv_exit_status() if channel.exit_status_ready() else -1
        except TimeoutError:
            self._drop(transport)  # the host may be hung; this connection is of no further use
            raise TransportError(self.host, f"command timed out after {timeout:g}s", timed_out=True) from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self._drop(transport)
            raise TransportError(self.host, f"connection lost: {exc or type(exc).__name__}") from None
        finally:
            channel.close()
        if code == -1:
            self._drop(transport)
            raise TransportError(self.host, "connection lost: the command ended without an exit status")
        return CommandResult(
            self.host,
            script,
            code,
            capture(stdout.decode("utf-8", "replace")),
            capture(stderr.decode("utf-8", "replace")),
            time.monotonic() - started,
        )

    def _drop(self, failed: paramiko.Transport) -> None:
        """Close the connection a command failed on, unless another thread already replaced it."""
        with self._guard:
            if self.conn.transport is failed:
                self._close()

    def close(self) -> None:
        with self._guard:
            self._close()

    def _close(self) -> None:
        try:
            self.conn.close()
        except Exception:  # closing a dead connection may raise anything; it is closed either way
            pass


class _UnknownHost(paramiko.SSHException):  # type: ignore[misc]  # paramiko is untyped
    pass


class _KnownHostsOnly(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
    """Accept exactly the keys of the known_hosts file (the client's own key store stays
    empty, so every host comes here); an unknown host or a different key is refused."""

    def __init__(self, keys: paramiko.HostKeys) -> None:
        self.keys = keys

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        if self.keys.check(hostname, key):
            return
        known = self.keys.lookup(hostname)
        if known is not None and key.get_name() in known:
            raise paramiko.BadHostKeyException(hostname, key, known[key.get_name()])
        raise _UnknownHost(f"host {hostname} is not in known_hosts (no {key.get_name()} key for it)")


def _known_hosts(host: str, path: Path) -> paramiko.HostKeys:
    try:
        stat = path.stat()
    except OSError as exc:
        raise TransportError(host, f"cannot read known_hosts {path}: {exc.strerror}") from None
    try:
        return _parsed_known_hosts(str(path), stat.st_mtime_ns, stat.st_size)
    except OSError as exc:
        raise TransportError(host, f"cannot read known_hosts {path}: {exc.strerror}") from None


@functools.lru_cache(maxsize=8)
def _parsed_known_hosts(path: str, mtime_ns: int, size: int) -> paramiko.HostKeys:
    """Parsed once per process and file version: every plant's every host checks against it."""
    return paramiko.HostKeys(path)


CHUNK = 256 * 1024


def _start(channel: paramiko.Channel, script: str, stdin: bytes) -> None:
    """Run ``script`` on the channel with ``stdin`` as its input.

    With no input the script's stdin is /dev/null on the host, and no end-of-file of ours is
    sent: paramiko sends an end-of-file outside its channel lock, so after a command that ended
    at once it could follow the close it had sent meanwhile, and OpenSSH drops the whole
    connection over an end-of-file for a channel it freed ("ieof packet referred to
    nonexistent channel"), failing the next command on it. ``exec`` inside the script keeps
    the remote shell's own exit (a signal stays a signal).
    """
    channel.exec_command("sh -c " + shlex.quote(script if stdin else "exec </dev/null\n" + script))
    if stdin:
        _send(channel, stdin)
        channel.shutdown_write()


def _send(channel: paramiko.Channel, data: bytes) -> None:
    """All of ``data``, chunk by chunk: paramiko's sendall copies what is left after every
    packet, which makes a 100 MB bundle take minutes. Scripts fed stdin print little, so
    their output cannot fill the window while we send."""
    position = 0
    while position < len(data):
        position += channel.send(data[position : position + CHUNK])


def _drain(channel: paramiko.Channel, deadline: float) -> tuple[bytes, bytes]:
    """Read stdout and stderr until the command has exited and its output ended, or the deadline."""
    out: list[bytes] = []
    err: list[bytes] = []
    while True:
        # Exit status can arrive before the last output: wait for end-of-file as well.
        finished = (channel.eof_received and channel.exit_status_ready()) or channel.closed
        while channel.recv_ready():
            out.append(channel.recv(65536))
        while channel.recv_stderr_ready():
            err.append(channel.recv_stderr(65536))
        if finished:
            return b"".join(out), b"".join(err)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        # The channel's pipe wakes us for data; end-of-file and exit status are polled.
        select.select([channel], [], [], min(remaining, 0.05))
