"""What one host's layer should run and what came of a plant's run: plain data, no I/O.

The executor in rollout/engine acts on these; work orders (``rollout/core/workorder.py``)
carry them; the orchestrator stores targets in the journal as JSON.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from rollout.core.assets import HostAssets
from rollout.core.bundle import Bundle

Outcome = Literal["updated", "unchanged", "rolled_back", "preflight_failed", "attention"]
CheckOutcome = Literal["succeeded", "failed", "inconclusive"]
Key = tuple[str, str]
"""(layer, host) of one plant."""


def release_dir(bundle: Bundle) -> str:
    """A folder name from the release id and the bundle's content: same bytes, same folder."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", bundle.release_id)[:80].lstrip(".") or "release"
    return f"{safe}-{bundle.bundle_hash[:12]}"


@dataclass(frozen=True)
class Target:
    """What one host's layer should run: a release folder (None: nothing) and how to get it."""

    release_dir: str | None
    release: str | None = None
    commit: str | None = None
    bundle_hash: str | None = None
    bundle: Bundle | None = None
    """Needed only when the folder may be missing on the host."""

    @classmethod
    def of(cls, bundle: Bundle) -> Target:
        """The target of a rendered bundle."""
        return cls(release_dir(bundle), bundle.release_id, bundle.commit, bundle.bundle_hash, bundle)

    def label(self) -> str:
        """The release's name for people ('nothing' for no release)."""
        return self.release or "nothing"


Targets = dict[Key, Target]
"""What each (layer, host) of a plant runs or should run."""


@dataclass(frozen=True)
class Steps:
    """Templated check and step fields of one release, per (layer, host)."""

    fields: dict[Key, dict[str, dict[str, str]]]


@dataclass(frozen=True)
class Attempt:
    """One try of one check."""

    number: int
    outcome: CheckOutcome
    detail: str
    duration_s: float

    def as_dict(self) -> dict[str, object]:
        return {
            "attempt": self.number,
            "outcome": self.outcome,
            "detail": self.detail,
            "duration_s": round(self.duration_s, 3),
        }


@dataclass(frozen=True)
class CheckResult:
    """Every attempt of one check on one host; the last decides."""

    check: str
    host: str | None
    """None for a playbook check, which covers every host of the layer at once."""
    attempts: tuple[Attempt, ...]

    @property
    def outcome(self) -> CheckOutcome:
        return self.attempts[-1].outcome if self.attempts else "inconclusive"

    @property
    def passed(self) -> bool:
        return self.outcome == "succeeded"


@dataclass
class PlantResult:
    """How one plant's run ended."""

    plant: str
    outcome: Outcome
    release: str | None
    reason: str = ""
    checks: list[CheckResult] = field(default_factory=list)
    assets: tuple[HostAssets, ...] = ()
    """What each host that answered is and runs afterwards (when the executor asked)."""

    @property
    def ok(self) -> bool:
        return self.outcome in ("updated", "unchanged")


def targets_to_json(targets: Targets) -> dict[str, dict[str, str | None]]:
    """Targets as the journal keeps them (``plant.before``): "layer/host" -> the release's names."""
    return {
        f"{layer}/{host}": {
            "release_dir": t.release_dir,
            "release": t.release,
            "commit": t.commit,
            "bundle_hash": t.bundle_hash,
        }
        for (layer, host), t in sorted(targets.items())
    }


def targets_from_json(data: dict[str, dict[str, str | None]]) -> Targets:
    """The inverse of ``targets_to_json`` (bundles are not kept: the folders are on the hosts)."""
    out: Targets = {}
    for key, value in data.items():
        layer, host = key.split("/", 1)
        out[(layer, host)] = Target(
            value.get("release_dir"), value.get("release"), value.get("commit"), value.get("bundle_hash")
        )
    return out


def commits_of(targets: Targets) -> list[str]:
    """The commits of every release in ``targets`` (not 'nothing'), sorted."""
    return sorted({t.commit for t in targets.values() if t.release_dir and t.commit})
