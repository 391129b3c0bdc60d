"""What travels between the centre and a plant's agent, as data: the assignment (a work order and
what to do with it), the blobs it is fetched as, and the result that comes back. Pure: no I/O.

Bundles travel as content-addressed blobs: one *index* per bundle (its manifest fields and each
file's path, mode and SHA-256) and one blob per file content, so a file that many plants share
is stored and fetched once. An agent checks every blob against its hash and the rebuilt bundle
against the order's bundle hash before anything reaches a host. The plant's *kit* (the project
files the executor reads there: ``rollout.yaml``, the plant's metadata and inventory, playbooks)
travels the same way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from rollout.core.assets import HostAssets, from_json, to_json
from rollout.core.bundle import Bundle, BundleFile, canonical_json
from rollout.core.steps import Attempt, CheckResult, PlantResult
from rollout.core.workorder import WorkOrder
from rollout.errors import RolloutError

Action = Literal["deploy", "restore", "recheck", "rollback", "rebuild"]
KIT_FORMAT = 1


class BlobError(RolloutError):
    """A blob is missing or does not match its hash: nothing of it is used."""


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Assignment(BaseModel):
    """One plant's work for its agent: the order, what to do with it, and from what."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    plant: str
    rollout: str
    action: Action
    operator: str
    order: dict[str, Any]
    """The ``WorkOrder`` as JSON data (bundles by hash)."""
    indexes: dict[str, str]
    """Layer -> the hash of its bundle's index blob."""
    kit: str
    """The hash of the kit's index blob."""
    before: dict[str, dict[str, str | None]] | None = None
    """What the plant ran before (``targets_to_json``): deploy, restore."""
    why: str = ""
    interrupted: bool = False
    layers: list[str] = []
    """rollback: the layers rolled back."""
    to_order: bool = False
    """rollback: to the order's release (else each host back to what it ran before)."""
    keys: list[str] = []
    """rebuild: the "layer/host" of every host brought back to the order's bundle of its layer."""

    def work(self, bundles: Mapping[str, Bundle] | None = None) -> WorkOrder:
        return WorkOrder.from_json(json.dumps(self.order), bundles)


# -- bundles and kits as blobs ---------------------------------------------------------------


def pack_bundle(bundle: Bundle) -> tuple[str, dict[str, bytes]]:
    """The bundle as blobs: (the index's hash, every blob by hash, the index among them)."""
    index = {
        "plant": bundle.plant,
        "layer": bundle.layer,
        "release_id": bundle.release_id,
        "commit": bundle.commit,
        "content_hash": bundle.content_hash,
        "overlay_hash": bundle.overlay_hash,
        "inputs_hash": bundle.inputs_hash,
        "files": [{"path": f.path, "mode": f.mode, "sha256": f.sha256} for f in bundle.files],
    }
    data = canonical_json(index)
    blobs = {f.sha256: f.content for f in bundle.files}
    blobs[digest(data)] = data
    return digest(data), blobs


def checked(fetch: Callable[[str], bytes], wanted: str) -> bytes:
    """The blob ``wanted``, refused unless its bytes hash to it."""
    data = fetch(wanted)
    if digest(data) != wanted:
        raise BlobError(f"blob {wanted[:12]} does not match its hash (got {digest(data)[:12]})")
    return data


def index_files(index_hash: str, fetch: Callable[[str], bytes]) -> tuple[dict[str, Any], list[str]]:
    """An index blob and the hashes of the files it lists (what still has to be fetched)."""
    try:
        index = json.loads(checked(fetch, index_hash))
        return index, [str(f["sha256"]) for f in index["files"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise BlobError(f"index {index_hash[:12]} is not an index: {exc}") from None


def unpack_bundle(index_hash: str, expected_hash: str, fetch: Callable[[str], bytes]) -> Bundle:
    """The bundle of an index, every file checked, and the whole checked against the order's hash."""
    index, _ = index_files(index_hash, fetch)
    files = tuple(BundleFile(str(f["path"]), checked(fetch, str(f["sha256"])), int(f["mode"])) for f in index["files"])
    bundle = Bundle(
        str(index["plant"]), str(index["layer"]), str(index["release_id"]), str(index["commit"]),
        str(index["content_hash"]), str(index["overlay_hash"]), str(index["inputs_hash"]), files,
    )  # fmt: skip
    if bundle.bundle_hash != expected_hash:
        raise BlobError(
            f"bundle of {bundle.layer} hashes to {bundle.bundle_hash[:12]}, the order says {expected_hash[:12]}"
        )
    return bundle


def pack_kit(files: Mapping[str, tuple[bytes, int]]) -> tuple[str, dict[str, bytes]]:
    """Project files (path -> content, mode) as blobs: (the kit index's hash, every blob by hash)."""
    entries = [{"path": p, "mode": m, "sha256": digest(c)} for p, (c, m) in sorted(files.items())]
    data = canonical_json({"format": KIT_FORMAT, "files": entries})
    blobs = {digest(c): c for c, _ in files.values()}
    blobs[digest(data)] = data
    return digest(data), blobs


def unpack_kit(index_hash: str, fetch: Callable[[str], bytes]) -> dict[str, tuple[bytes, int]]:
    """The kit's files, each checked against its hash; paths must stay inside the kit."""
    index, _ = index_files(index_hash, fetch)
    out: dict[str, tuple[bytes, int]] = {}
    for entry in index["files"]:
        path = str(entry["path"])
        if path.startswith("/") or ".." in path.split("/") or not path:
            raise BlobError(f"kit {index_hash[:12]} names a path outside itself: {path!r}")
        out[path] = (checked(fetch, str(entry["sha256"])), int(entry["mode"]))
    return out


# -- results -----------------------------------------------------------------------------------


def result_to_json(result: PlantResult | str) -> str:
    """A plant's result (or a recheck's reason, '' when healthy) as the agent sends it."""
    if isinstance(result, str):
        return json.dumps({"recheck": result})
    return json.dumps(
        {
            "plant": result.plant,
            "outcome": result.outcome,
            "release": result.release,
            "reason": result.reason,
            "checks": [_check(c) for c in result.checks],
            "assets": [to_json(a) for a in result.assets],
        }
    )


def _check(check: CheckResult) -> dict[str, Any]:
    return {"check": check.check, "host": check.host, "attempts": [a.as_dict() for a in check.attempts]}


def recheck_from_json(text: str) -> str:
    return str(json.loads(text).get("recheck", "the agent sent no recheck result"))


def result_from_json(text: str) -> PlantResult:
    data = json.loads(text)
    checks = [
        CheckResult(
            str(c["check"]),
            None if c.get("host") is None else str(c["host"]),
            tuple(
                Attempt(int(a["attempt"]), a["outcome"], str(a["detail"]), float(a["duration_s"]))
                for a in c["attempts"]
            ),
        )
        for c in data.get("checks", [])
    ]
    assets: tuple[HostAssets, ...] = tuple(from_json(a) for a in data.get("assets", []))
    return PlantResult(
        str(data["plant"]), data["outcome"], data.get("release"), str(data.get("reason", "")), checks, assets
    )
