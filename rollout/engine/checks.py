"""Running a layer's checks: command on each host, HTTP and TCP from here, or a playbook.

Each attempt ends succeeded, failed (the check answered no) or inconclusive (no answer:
a timeout, an unreachable host); the last attempt decides. Every attempt is kept.
"""

from __future__ import annotations

import re
import shlex
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from rollout.config.models import Check, CommandCheck, HttpCheck, TcpCheck
from rollout.core.clock import Clock
from rollout.core.steps import Attempt, CheckResult
from rollout.core.steps import CheckOutcome as Outcome
from rollout.transports.base import Transport, TransportError, trim

__all__ = ["Attempt", "CheckResult", "Outcome", "Probe", "host_probe", "with_retries"]
MAX_BODY = 64 * 1024


Probe = Callable[[], tuple[Outcome, str]]


def with_retries(
    name: str,
    host: str | None,
    probe: Probe,
    retries: int,
    interval: float,
    on_attempt: Callable[[Attempt], None],
    clock: Clock,
) -> CheckResult:
    """Ask ``probe`` until it succeeds, at most ``retries`` more times, ``interval`` apart on ``clock``."""
    attempts: list[Attempt] = []
    for number in range(1, retries + 2):
        started = time.monotonic()
        outcome, detail = probe()
        attempt = Attempt(number, outcome, trim(detail, 1000), time.monotonic() - started)
        attempts.append(attempt)
        on_attempt(attempt)
        if outcome == "succeeded":
            break
        if number <= retries:
            clock.sleep(interval)
    return CheckResult(name, host, tuple(attempts))


def host_probe(check: Check, fields: dict[str, str], transport: Transport, directory: str) -> Probe:
    """The probe of a per-host check; ``fields`` are its templates rendered for this host."""
    if isinstance(check, CommandCheck):
        return lambda: _command(transport, directory, fields["command"], check.timeout)
    if isinstance(check, HttpCheck):
        return lambda: _http(fields["url"], check)
    if isinstance(check, TcpCheck):
        return lambda: _tcp(fields["host"], int(fields["port"]), check.timeout)
    raise TypeError(f"{type(check).__name__} is not a per-host check")


def _command(transport: Transport, directory: str, command: str, timeout: float) -> tuple[Outcome, str]:
    try:
        result = transport.run(f"cd {shlex.quote(directory)} && {command}", timeout)
    except TransportError as exc:
        return "inconclusive", exc.reason
    return ("succeeded" if result.ok else "failed"), f"exit {result.exit_code}: {result.output()}"


# Checks go straight to the host: an http_proxy in the environment must not stand in between.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _http(url: str, check: HttpCheck) -> tuple[Outcome, str]:
    try:
        with _DIRECT.open(url, timeout=check.timeout) as response:
            status, body = response.status, response.read(MAX_BODY)
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read(MAX_BODY)
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ConnectionRefusedError):
            return "failed", f"{url}: connection refused"
        return "inconclusive", f"{url}: {reason}"
    except TimeoutError:
        return "inconclusive", f"{url}: no answer within {check.timeout:g}s"
    except (OSError, ValueError) as exc:
        return "inconclusive", f"{url}: {exc}"
    text = body.decode("utf-8", "replace")
    if status != check.expect_status:
        return "failed", f"{url}: status {status}, expected {check.expect_status}: {text[:300]}"
    if check.body_contains is not None and check.body_contains not in text:
        return "failed", f"{url}: body lacks {check.body_contains!r}: {text[:300]}"
    if check.body_regex is not None and not re.search(check.body_regex, text):
        return "failed", f"{url}: body does not match {check.body_regex!r}: {text[:300]}"
    return "succeeded", f"{url}: status {status}"


def _tcp(host: str, port: int, timeout: float) -> tuple[Outcome, str]:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return "succeeded", f"{host}:{port} accepts connections"
    except ConnectionRefusedError:
        return "failed", f"{host}:{port} refused the connection"
    except TimeoutError:
        return "inconclusive", f"{host}:{port}: no answer within {timeout:g}s"
    except OSError as exc:
        return "inconclusive", f"{host}:{port}: {exc}"
