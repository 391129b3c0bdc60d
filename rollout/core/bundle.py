"""Rendered bundles and their manifests: pure data, byte-identical for identical inputs."""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from rollout.config.secrets import json_default

MANIFEST_FORMAT = 1


@dataclass(frozen=True)
class BundleFile:
    path: str
    content: bytes
    mode: int

    @functools.cached_property
    def sha256(self) -> str:  # asked for by the manifest, the bundle hash and the writer: hashed once
        return hashlib.sha256(self.content).hexdigest()

    def entry(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "size": len(self.content), "mode": f"{self.mode:04o}"}


@dataclass(frozen=True)
class Bundle:
    """What one layer of one plant receives at one release."""

    plant: str
    layer: str
    release_id: str
    commit: str
    content_hash: str
    overlay_hash: str
    inputs_hash: str
    files: tuple[BundleFile, ...]

    @functools.cached_property
    def bundle_hash(self) -> str:
        """Hash of the files alone: equal bundles hash equal whatever plant or release."""
        digest = hashlib.sha256()
        for f in self.files:
            digest.update(f"{f.path}\0{f.mode:o}\0{f.sha256}\n".encode())
        return digest.hexdigest()

    def manifest(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "plant": self.plant,
            "layer": self.layer,
            "release": {"id": self.release_id, "commit": self.commit, "content_hash": self.content_hash},
            "overlay_hash": self.overlay_hash,
            "inputs_hash": self.inputs_hash,
            "bundle_hash": self.bundle_hash,
            "files": [f.entry() for f in self.files],
        }

    def manifest_bytes(self) -> bytes:
        return canonical_json(self.manifest(), indent=2) + b"\n"


def canonical_json(value: Any, indent: int | None = None) -> bytes:
    """JSON with sorted keys and fixed separators, so equal data gives equal bytes."""
    separators = (",", ": ") if indent else (",", ":")
    return json.dumps(
        value, sort_keys=True, indent=indent, separators=separators, ensure_ascii=False, default=json_default
    ).encode()


def sha256_json(value: Any) -> str:
    return hashlib.sha256(canonical_json(value)).hexdigest()
