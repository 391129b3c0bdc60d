"""Host patterns as Ansible reads them: an optional ``:port``, then ``[begin:end(:step)]`` ranges.

``www[01:50].example.com``, ``db-[a:f]``, ``gw[1:10:2]``, ``[2001:db8::1]:2222``. Ansible only
splits a port off when what is left is a host name or an IPv6 address (ranges allowed);
anything else stays the host name as written, port included. Ranges then expand from the
first ``[`` and the first ``]``, recursively, exactly as Ansible's ``expand_hostname_range``
does: letters or numbers, a leading zero fixing the width, an optional step.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Sequence

MAX_NAME = 1024
"""Characters of one host name: DNS allows 253; the bound keeps a hostile range from filling memory."""


class PatternError(ValueError):
    """A host pattern Ansible refuses too; the message says what was expected."""


_BRACKETED_PORT = re.compile(r"^\[(.+)\]:([0-9]+)$")
_TRAILING_PORT = re.compile(r"^((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)$")  # ':' only inside brackets before the port

_ALNUM_RANGE = r"\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]"
_LABEL = rf"(?:\w|{_ALNUM_RANGE})(?:[\w-]|{_ALNUM_RANGE})*(?<![_-])"


@functools.cache  # compiled on first use: most inventories write no port
def _address_patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """A host name (an IPv4 address is one to this pattern) and an IPv6 address, ranges allowed in both."""
    hostname = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$", re.IGNORECASE)
    # Eight 16-bit groups, or fewer around one '::' (at most seven written), or an IPv4 tail.
    group = r"(?:[0-9a-f]{1,4}|\[[0-9a-f]+:[0-9a-f]+(?::[0-9]+)?\])"
    forms = [rf"(?:{group}:){{7}}{group}", "::", rf"(?:{group}:){{1,6}}:", rf":(?::{group}){{1,6}}"]
    forms += [rf"(?:{group}:){{{left}}}(?::{group}){{1,{7 - left}}}" for left in range(1, 7)]
    ipv4_tail = rf"(?:{group}\.){{3}}{group}"
    forms += [rf"(?:0:){{6}}{ipv4_tail}", rf"::(?:ffff:)?{ipv4_tail}", rf"(?:0:){{5}}ffff:{ipv4_tail}"]
    return hostname, re.compile("^(?:" + "|".join(forms) + ")$", re.IGNORECASE)


def split_port(pattern: str) -> tuple[str, int | None]:
    """``(host pattern, port)``; the port is None when Ansible would not see one."""
    if ":" not in pattern:  # most host names: no port to look for
        return pattern, None
    address, port = pattern, None
    try:
        for form in (_BRACKETED_PORT, _TRAILING_PORT):  # both, in turn: '[h:1]:2' ends as 'h' port 1
            match = form.match(address)
            if match:
                address, port = match.group(1), int(match.group(2))
    except ValueError:  # a port of more digits than int() converts: not a port, as for Ansible
        return pattern, None
    if port is None:  # nothing split off: the pattern stays as written, whatever it is
        return pattern, None
    hostname, ipv6 = _address_patterns()
    if hostname.match(address) or ipv6.match(address):
        return address, port
    return pattern, None


def expand(pattern: str, limit: int) -> list[str]:
    """The host names a pattern stands for; more than ``limit`` of them is an error."""
    if "[" not in pattern:
        return [_checked(pattern)]
    names: list[str] = []
    _expand(pattern, names, limit)
    return names


def _checked(name: str) -> str:
    if len(name) > MAX_NAME:
        raise PatternError(f"host name longer than {MAX_NAME} characters")
    return name


def _expand(pattern: str, names: list[str], limit: int) -> None:
    parts = pattern.replace("[", "|", 1).replace("]", "|", 1).split("|")
    if len(parts) != 3:
        raise PatternError("a host range is one '[begin:end]' or '[begin:end:step]' (and no '|')")
    head, spec, tail = parts
    bounds = spec.split(":")
    if len(bounds) not in (2, 3):
        raise PatternError("a host range is begin:end or begin:end:step")
    begin, end = bounds[0] or "0", bounds[1]
    step = bounds[2] if len(bounds) == 3 else "1"
    if not end:
        raise PatternError("a host range needs an end value")
    width = len(begin) if begin[0] == "0" and len(begin) > 1 else 0  # '01' pads every number to 2 digits
    if width and len(end) != width:
        raise PatternError("a host range with a leading zero needs begin and end of equal length")
    sequence = _sequence(begin, end, step)
    if _length(sequence) > limit - len(names):
        raise PatternError(f"host ranges expand to more than {limit} hosts")
    for item in sequence:
        name = head + (str(item).zfill(width) if width else str(item)) + tail
        if "[" in name:
            _expand(name, names, limit)
        else:
            names.append(_checked(name))
            if len(names) > limit:
                raise PatternError(f"host ranges expand to more than {limit} hosts")


def _sequence(begin: str, end: str, step: str) -> Sequence[object]:
    """Letters when both bounds are found among the ASCII letters, else numbers."""
    letters = string.ascii_letters
    if begin in letters and end in letters:  # substrings, as Ansible's str.index() finds them
        first, last = letters.index(begin), letters.index(end)
        if first > last:
            raise PatternError("a host range needs begin <= end")
        try:
            return letters[first : last + 1 : int(step)]
        except ValueError:  # a step that is no number, or 0: Ansible then tries the bounds as numbers
            pass
    try:
        return range(int(begin), int(end) + 1, int(step))
    except ValueError:
        raise PatternError(
            f"host range [{begin}:{end}] is neither numbers nor letters (or its step {step!r} is no number above 0)"
        ) from None


def _length(sequence: Sequence[object]) -> int:
    try:
        return len(sequence)
    except OverflowError:  # a range longer than sys.maxsize
        return 2**63
