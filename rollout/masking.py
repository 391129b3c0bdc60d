"""The plain texts of the secrets this process decrypted, and masking them out of anything shown.

A last line of defence: what people see (problems, crash logs, diffs, check output) passes
through ``mask``, so a secret that reached a message by any road is shown as ``***``.
"""

from __future__ import annotations

MASK = "***"

_revealed: frozenset[str] = frozenset()
"""Replaced whole, never changed in place: a thread masking reads one consistent set."""


def remember(plain: str) -> None:
    """Mask ``plain`` from now on (empty text masks nothing)."""
    global _revealed
    if plain and plain not in _revealed:
        _revealed = _revealed | {plain}


def holds_secret(text: str) -> bool:
    return any(plain in text for plain in _revealed)


def mask(text: str) -> str:
    """``text`` with every secret decrypted so far replaced by ``***`` (longest first)."""
    known = _revealed
    if not known or not text:
        return text
    for plain in sorted(known, key=len, reverse=True):
        text = text.replace(plain, MASK)
    return text


def mask_data(value: object) -> object:
    """``value`` (plain data: dicts, lists, strings) with every string masked."""
    if not _revealed:
        return value
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {k: mask_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_data(v) for v in value]
    return value
