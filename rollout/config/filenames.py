"""File names that may land on a plant's hosts: one pure check, used wherever names enter.

Names enter from the code base (git, at a release), from overlays (folders of the
project) and from rendering (a template's name without ``.j2``). Each of those places
calls :func:`name_problems` (or :func:`name_refusal`, name by name, in a walk that skips
what a refused folder holds), and where names of several places meet (a plant's overlays
laid over the code base) :func:`clash_problems` looks for clashes. So a name no plant
should carry is refused by ``validate``, and by ``render`` and ``deploy`` before anything
is written or any host is touched.

Refused in any component of a path, and why:

* bytes that are not UTF-8 (kept as lone surrogates by the decoders): no manifest can
  name them, and hosts with another locale would name them differently;
* control characters (Unicode Cc: newline, tab, escape, DEL, C1): they split lines in
  logs, manifests and shell loops, and recolour or rewrite a terminal;
* format characters (Cf: the bidi controls U+202A-U+202E, U+2066-U+2069, U+200E/U+200F,
  U+061C, zero-width spaces and joiners, the BOM, soft hyphens): invisible, they make a
  name look like another (``invoice`` U+202E ``txt.exe`` shows as ``invoiceexe.txt``).
  This also refuses the joiner inside emoji sequences and Persian's zero-width
  non-joiner: a fair price for names on plant hosts;
* line and paragraph separators (Zl, Zp): newlines by another name;
* an empty component, ``.`` or ``..``: not a file, or outside the folder;
* a component longer than 255 bytes of UTF-8: no Linux file system can hold it.

Refused in a set of paths that land together: two different names that are equal once
normalised to NFC (``café`` written with U+00E9 and with ``e`` + U+0301), in one folder.
A host's file system that normalises names (macOS, some NAS shares) would make them one
file, and people cannot tell them apart. A name stored in NFD alone is kept: repositories
made on macOS hold such names legitimately. Names that differ only in case are kept too:
Linux hosts are case-sensitive.

Everything else is kept: non-ASCII letters, CJK, emoji, combining marks, spaces (also the
no-break ones), private-use and not yet assigned code points (a newer emoji, to Python's
Unicode tables). Messages escape what does not print as itself (``errors.printable``).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rollout.errors import Problem

NAME_MAX_BYTES = 255
EXPECTED = "a plain file name: visible characters (no control, bidi or zero-width ones), not empty, '.' or '..'"
_REFUSED_CATEGORIES = {
    "Cc": "a control character",
    "Cf": "an invisible format character (bidi control, zero-width character or the like)",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}


def name_problem(path: str) -> str | None:
    """Why ``path`` ('/'-separated, relative) may not name a file on a host; None if it may."""
    for component in path.split("/"):
        reason = _component_problem(component)
        if reason is not None:
            return reason
    return None


def _component_problem(name: str) -> str | None:
    if not name:
        return "file name has an empty component"
    if name in (".", ".."):
        return f"file name has a component {name!r}, which names no file of its folder"
    plain = name.isascii()
    if not plain and any("\ud800" <= c <= "\udfff" for c in name):
        return "file name is not UTF-8"
    if len(name) > NAME_MAX_BYTES or len(name.encode("utf-8")) > NAME_MAX_BYTES:
        return f"file name longer than {NAME_MAX_BYTES} bytes, which no Linux file system holds"
    if plain and name.isprintable():  # nearly every name: nothing more to look at
        return None
    for c in name:
        what = _REFUSED_CATEGORIES.get(unicodedata.category(c))
        if what is not None:
            return f"file name holds U+{ord(c):04X}, {what}"
    return None


@dataclass(frozen=True)
class Clash:
    """Two different names of one folder, equal under NFC; each with a file it holds (or is)."""

    kept: str
    """The name seen first (in sorted order), as a path."""
    clashing: str
    kept_file: str
    clashing_file: str


def nfc_collisions(paths: Iterable[str]) -> list[Clash]:
    """Every clash under NFC among the files ``paths`` and their folders.

    A folder that clashes is reported once, not again for every file inside it.
    """
    paths = list(paths)
    if all(unicodedata.is_normalized("NFC", p) for p in paths):
        return []  # distinct names that are all NFC stay distinct under NFC
    seen: dict[tuple[str, str], tuple[str, str]] = {}
    """(real parent folder, NFC of a name) -> the first name seen there, and its first file."""
    found: dict[str, Clash] = {}
    for path in sorted(paths):
        parent = ""
        for name in path.split("/"):
            here = f"{parent}/{name}" if parent else name
            first, first_file = seen.setdefault((parent, unicodedata.normalize("NFC", name)), (name, path))
            if first != name and here not in found:
                found[here] = Clash(f"{parent}/{first}" if parent else first, here, first_file, path)
            parent = here
    return list(found.values())


def name_problems(displays: Mapping[str, str], place: str) -> list[Problem]:
    """Every file of ``displays`` (path -> how to show it) refused on its own or by a clash.

    ``place`` says where the names are (``overlay overlays/p1``, ``code base at release v1``).
    """
    refused = (name_refusal(path, shown, place) for path, shown in displays.items())
    return [problem for problem in refused if problem is not None] + clash_problems(displays, place)


def clash_problems(displays: Mapping[str, str], place: str) -> list[Problem]:
    """The clashes under NFC alone: for names each checked where they entered, now put together."""
    return [_clash_problem(clash, displays, place) for clash in nfc_collisions(displays)]


def name_refusal(path: str, shown: str, place: str) -> Problem | None:
    """The problem with the one name ``path`` (shown as ``shown``), or None: for walks that
    check each name as they meet it, and skip what a refused folder holds."""
    reason = name_problem(path)
    return None if reason is None else Problem(shown, message=f"{reason} ({place})", expected=EXPECTED)


def _clash_problem(clash: Clash, displays: Mapping[str, str], place: str) -> Problem:
    is_file = clash.clashing == clash.clashing_file
    other = displays[clash.kept_file] if is_file else f"holding {displays[clash.kept_file]}"
    # The two names print alike: ascii() shows how they differ (caf\xe9 and cafe\u0301).
    return Problem(
        displays[clash.clashing_file],
        message=(
            f"{'file' if is_file else 'folder'} {ascii(clash.clashing)} and {ascii(clash.kept)} ({other}) differ "
            f"only in Unicode normalisation ({place}): a host that normalises names would make them one"
        ),
        expected="names that differ in more than their Unicode normalisation (NFC)",
    )
