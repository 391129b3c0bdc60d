"""The agent's cache of blobs by hash: fetched once from the centre, checked, kept on disk, so a
restarted agent (or the put-back after a cut link) needs nothing more from the centre."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from rollout.core.agentwork import BlobError, digest

_HASH = re.compile(r"^[0-9a-f]{64}$")


class BlobCache:
    def __init__(self, folder: Path, fetch: Callable[[str], bytes]) -> None:
        self.folder = folder
        self.fetch = fetch
        folder.mkdir(parents=True, exist_ok=True)

    def get(self, wanted: str) -> bytes:
        """The blob ``wanted``: from disk if it is there and whole, else fetched and checked."""
        if not _HASH.match(wanted):
            raise BlobError(f"not a blob hash: {wanted[:80]!r}")
        path = self.folder / wanted
        if path.is_file():
            data = path.read_bytes()
            if digest(data) == wanted:
                return data
        data = self.fetch(wanted)
        if digest(data) != wanted:
            raise BlobError(f"the centre sent blob {wanted[:12]} with other bytes (they hash to {digest(data)[:12]})")
        partial = path.with_suffix(".part")
        partial.write_bytes(data)
        os.replace(partial, path)
        return data
