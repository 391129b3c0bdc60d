"""The agent's own settings, validated like every other input: a bad URL, an unreadable token
file or a wrong plant is a ``ConfigError`` naming the option and what was expected."""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from rollout.config.models.common import NAME_PATTERN
from rollout.errors import ConfigError

MAX_TOKEN_BYTES = 4096


@dataclass(frozen=True)
class AgentSettings:
    plant: str
    server: str
    """The centre's base URL, without a trailing slash."""
    token: str
    work_dir: Path
    ca_file: Path | None = None
    known_hosts: Path | None = None
    """Overrides the kit's ``ssh.known_hosts`` (a path on this node)."""
    insecure: bool = False
    poll_s: float = 20.0
    heartbeat_s: float = 5.0


def settings(
    plant: str,
    server: str,
    token_file: Path,
    work_dir: Path,
    ca_file: Path | None = None,
    known_hosts: Path | None = None,
    insecure: bool = False,
) -> AgentSettings:
    """Checked settings, or ConfigError naming the option at fault."""
    if not re.match(NAME_PATTERN, plant):
        raise ConfigError.one("--plant", f"invalid plant name {plant!r}", expected="a plant name such as 'berlin'")
    return AgentSettings(
        plant, _server(server), _token(token_file), _work_dir(work_dir), _readable(ca_file, "--ca-file"),
        _readable(known_hosts, "--known-hosts"), insecure,
    )  # fmt: skip


def _server(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    expected = "the console's URL, such as https://rollout.example:8470"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError.one("--server", f"not an http(s) URL: {url!r}", expected=expected)
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigError.one(
            "--server", "the URL may not carry a user, password, query or fragment", expected=expected
        )
    try:
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError:
        raise ConfigError.one("--server", f"bad port in {url!r}", expected=expected) from None
    return url.rstrip("/")


def _token(path: Path) -> str:
    try:
        data = path.read_bytes()[: MAX_TOKEN_BYTES + 1]
    except OSError as exc:
        raise ConfigError.one(
            str(path), f"cannot read the token file: {exc.strerror}", location="--token-file"
        ) from None
    token = data.decode("utf-8", "replace").strip()
    if not token or len(data) > MAX_TOKEN_BYTES or any(c.isspace() or not c.isprintable() for c in token):
        raise ConfigError.one(
            str(path), "the token file does not hold one token", location="--token-file",
            expected="the one line 'rollout user add NAME --role agent --plant P' printed",
        )  # fmt: skip
    return token


def _readable(path: Path | None, option: str) -> Path | None:
    if path is None:
        return None
    if not path.is_file():
        raise ConfigError.one(str(path), "no such file", location=option, expected="a readable file")
    return path


def _work_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".writable"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ConfigError.one(str(path), f"cannot use the work folder: {exc.strerror}", location="--work-dir") from None
    return path
