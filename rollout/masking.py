"""The plain texts of the secrets this process decrypted, and masking them out of anything shown.

A last line of defence: what people see (problems, crash logs, diffs, check output) passes
through ``mask``, so a secret that reached a message by any road is shown as ``***``.
"""

from __future__ import annotations

MASK = "***"

_revealed: set[str] = set()


def remember(plain: str) -> None:
    """Mask ``plain`` from now on (empty text masks nothing)."""
    if plain:
        _revealed.add(plain)


def revealed() -> frozenset[str]:
    return frozenset(_revealed)


def holds_secret(text: str) -> bool:
    return any(plain in text for plain in _revealed)


def mask(text: str) -> str:
    """``text`` with every secret decrypted so far replaced by ``***`` (longest first)."""
    if not _revealed or not text:
        return text
    for plain in sorted(_revealed, key=len, reverse=True):
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
