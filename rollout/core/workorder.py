"""A work order: everything one plant's deploy needs, as data, rendered before any host is touched.

The release, its commit, the plant's bundles by hash, the rendered steps and checks of the
new release per (layer, host), and those of every older release the plant's hosts may be
running, by commit, so that a rollback in the middle of a deploy, or the put-back after a
bake, runs the old release's own checks without reading the code base again. It turns into
JSON and back (``to_json``/``from_json``), so a plant can be run in this process or by the
plant's agent; the bundles' files stay out of the JSON and are fetched by hash
(``bundles`` maps hash -> Bundle for this process).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from pydantic import BaseModel, ConfigDict, PrivateAttr

from rollout.core.bundle import Bundle
from rollout.core.steps import Steps, Target, release_dir
from rollout.errors import RolloutError

RenderSteps = Callable[[str], Steps]
"""Renders the steps and checks of the release at a commit for one plant (raises ConfigError)."""
RenderBundles = Callable[[str, str], Mapping[str, Bundle]]
"""Renders one plant's bundles (by layer) of the release at a commit, under the release's name."""


class MissingWork(RolloutError):
    """The order lacks what the run asks of it (a bundle not fetched, a commit not rendered)."""


class RenderedSteps(BaseModel):
    """One release's templated step and check fields: "layer/host" -> step or "checks.NAME" -> field -> text."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fields: dict[str, dict[str, dict[str, str]]]

    @classmethod
    def of(cls, steps: Steps) -> RenderedSteps:
        return cls(fields={f"{layer}/{host}": value for (layer, host), value in sorted(steps.fields.items())})

    def steps(self) -> Steps:
        out: dict[tuple[str, str], dict[str, dict[str, str]]] = {}
        for key, value in self.fields.items():
            layer, host = key.split("/", 1)
            out[(layer, host)] = value
        return Steps(out)


class LayerWork(BaseModel):
    """One layer of the order: the plant's bundle of it, by hash, and the folder it goes to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    layer: str
    bundle_hash: str
    release_dir: str
    size: int
    """Bytes of the bundle's files (what the preflight needs room for)."""


class WorkOrder(BaseModel):
    """Everything one plant's deploy needs; frozen, and JSON without the bundles' files."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    plant: str
    release: str
    commit: str | None
    layers: tuple[LayerWork, ...]
    """In the project's order of layers."""
    steps: RenderedSteps
    """The new release's steps and checks."""
    old_steps: dict[str, RenderedSteps]
    """Commit -> the steps and checks of an older release the plant's hosts may run."""
    clean: dict[str, str] = {}
    """Release folder -> the hash of its bundle rendered again at preflight, because a host's copy
    of that release (which a rollback returns to) drifted: the rollback stages it clean."""
    asset_stamps: dict[str, str] = {}
    """Host -> its package database's stamp in the state's last asset record of it: a host
    whose database still has that stamp sends no package list (``rollout.core.assets``)."""
    _bundles: dict[str, Bundle] = PrivateAttr(default_factory=dict)
    _clean: dict[str, Bundle] = PrivateAttr(default_factory=dict)
    """The clean copies by folder: bundles of equal files share a hash across releases, but each
    is staged under its own release's name and manifest."""

    @classmethod
    def build(
        cls,
        plant: str,
        release: str,
        commit: str | None,
        bundles: Mapping[str, Bundle],
        steps: Steps,
        old_steps: Mapping[str, Steps],
    ) -> WorkOrder:
        """An order from what was rendered: ``bundles`` by layer, in the project's order."""
        layers = tuple(
            LayerWork(
                layer=name,
                bundle_hash=b.bundle_hash,
                release_dir=release_dir(b),
                size=sum(len(f.content) for f in b.files),
            )
            for name, b in bundles.items()
        )
        order = cls(
            plant=plant,
            release=release,
            commit=commit,
            layers=layers,
            steps=RenderedSteps.of(steps),
            old_steps={c: RenderedSteps.of(s) for c, s in sorted(old_steps.items())},
        )
        order._bundles = {b.bundle_hash: b for b in bundles.values()}
        return order

    def to_json(self) -> str:
        """The order as JSON: every field, bundles by hash only."""
        return self.model_dump_json()

    @classmethod
    def from_json(
        cls, text: str | bytes, bundles: Mapping[str, Bundle] | None = None, clean: Mapping[str, Bundle] | None = None
    ) -> WorkOrder:
        """The order back from JSON; ``bundles`` (hash -> Bundle) are those fetched for it, and
        ``clean`` (folder -> Bundle) its clean copies."""
        order = cls.model_validate_json(text)
        order._bundles = {h: b for h, b in (bundles or {}).items() if h in order.hashes()}
        order._clean = {n: b for n, b in (clean or {}).items() if order.clean.get(n) == b.bundle_hash}
        return order

    def hashes(self) -> set[str]:
        """The hashes of the bundles the order needs."""
        return {lay.bundle_hash for lay in self.layers} | set(self.clean.values())

    @property
    def bundles(self) -> dict[str, Bundle]:
        """Layer -> the plant's bundle of that layer (raises MissingWork for one not fetched)."""
        missing = sorted(lay.layer for lay in self.layers if lay.bundle_hash not in self._bundles)
        if missing:
            raise MissingWork(f"work order of {self.plant}: bundles of {', '.join(missing)} not fetched")
        return {lay.layer: self._bundles[lay.bundle_hash] for lay in self.layers}

    def new_steps(self) -> Steps:
        return self.steps.steps()

    def steps_of(self, commit: str | None) -> Steps:
        """The steps of the release at ``commit``; None (a host that ran nothing): the new release's
        (only the stop step of what is removed runs)."""
        if commit is None:
            return self.new_steps()
        found = self.old_steps.get(commit)
        if found is None:
            raise MissingWork(f"work order of {self.plant}: the checks of commit {commit[:12]} were not rendered")
        return found.steps()

    def lacks(self, commits: list[str]) -> list[str]:
        """Those of ``commits`` whose steps the order does not carry."""
        return [c for c in commits if c not in self.old_steps]

    def with_old(self, more: Mapping[str, Steps]) -> WorkOrder:
        """The same order with the steps of more older releases (rendered at preflight)."""
        old = {**self.old_steps, **{c: RenderedSteps.of(s) for c, s in more.items()}}
        order = self.model_copy(update={"old_steps": dict(sorted(old.items()))})
        order._bundles, order._clean = dict(self._bundles), dict(self._clean)
        return order

    def with_clean(self, bundles: Mapping[str, Bundle]) -> WorkOrder:
        """The same order carrying clean copies of releases that drifted on hosts (folder -> bundle)."""
        clean = {**self.clean, **{name: b.bundle_hash for name, b in bundles.items()}}
        order = self.model_copy(update={"clean": dict(sorted(clean.items()))})
        order._bundles, order._clean = dict(self._bundles), {**self._clean, **bundles}
        return order

    def cleaned(self, target: Target) -> Target:
        """``target`` with the clean copy of its folder the order carries, if any: staged in
        place of the drifted one before the switch back to it."""
        bundle = self._clean.get(target.release_dir or "")
        if bundle is None or target.bundle is not None or bundle.bundle_hash != target.bundle_hash:
            return target
        return replace(target, bundle=bundle)

    def knowing(self, stamps: Mapping[str, str]) -> WorkOrder:
        """The same order with the hosts' package-database stamps as the state has them now."""
        order = self.model_copy(update={"asset_stamps": dict(sorted(stamps.items()))})
        order._bundles, order._clean = dict(self._bundles), dict(self._clean)
        return order

    def __eq__(self, other: object) -> bool:  # the data, not which bundles this process holds
        return isinstance(other, WorkOrder) and self.model_dump() == other.model_dump()

    def __hash__(self) -> int:
        return hash(self.to_json())
