"""``rollout.yaml``: the code base, the layers, what overlays may touch, the strategy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator

from rollout.config.models.checks import Check, PlaybookStep, Step
from rollout.config.models.common import AbsPath, Duration, Model, Name, RelPath
from rollout.config.models.inventory import GROUP_PATTERN
from rollout.config.models.notify import Webhook
from rollout.config.models.strategy import StrategyConfig

Glob = Annotated[RelPath, Field(max_length=512)]
"""A pattern over code-base paths; like every path, it cannot leave its folder."""


class CodebaseConfig(Model):
    """Where the solution's files are: a git repository and a folder inside it."""

    repo: Annotated[str, Field(min_length=1)] = "."
    """The git repository, relative to the project folder (or absolute)."""
    path: RelPath = "."
    """The folder inside the repository that holds the solution."""
    values: RelPath = "values.yaml"
    """The base values file, relative to ``path``."""
    ref: Annotated[str, Field(min_length=1, max_length=256)] = "HEAD"
    """The release used when a command is given no ``--release``."""


class LayerConfig(Model):
    """One ordered part of the solution, deployed and checked as a unit."""

    name: Name
    group: Annotated[str, Field(pattern=GROUP_PATTERN)] | None = None
    """Inventory group whose hosts receive this layer (default: the layer's name)."""
    source: RelPath | None = None
    """Folder of the code base rendered for this layer (default: the layer's name)."""
    target: AbsPath
    """Folder on each host holding ``releases/`` and the ``current`` link."""
    activation: Literal["builtin"] | PlaybookStep = "builtin"
    restart: Step | None = None
    """Run after the switch, forward and on rollback (e.g. restart the service)."""
    stop: Step | None = None
    """Run before a rollback to nothing removes the layer (a failed first install)."""
    checks: list[Check] = []
    keep_releases: Annotated[int, Field(ge=1, le=100)] = 5

    @property
    def inventory_group(self) -> str:
        return self.group or self.name.replace("-", "_")

    @property
    def source_dir(self) -> str:
        return self.source or self.name

    @field_validator("checks")
    @classmethod
    def _unique_checks(cls, checks: list[Check]) -> list[Check]:
        _unique([c.name for c in checks], "check")
        return checks


class OverlayPolicy(Model):
    """Which code-base paths an overlay may replace and which it may add.

    Patterns are matched segment by segment: ``*`` never crosses ``/``; a whole ``**``
    segment matches any number of folders.
    """

    may_replace: list[Glob] = []
    may_add: list[Glob] = []


class SshConfig(Model):
    """How plants' hosts are reached over SSH (hosts whose ``ansible_connection`` is ssh)."""

    known_hosts: Annotated[str, Field(min_length=1, max_length=4096)] = "~/.ssh/known_hosts"
    """Host keys are verified against this file (relative to the project, or absolute)."""
    connect_timeout: Duration = 10.0
    command_timeout: Duration = 300.0

    @field_validator("known_hosts")
    @classmethod
    def _expandable(cls, value: str) -> str:
        if "\0" in value:
            raise ValueError("a path without NUL characters")
        try:
            Path(value).expanduser()
        except RuntimeError:  # '~name' of no user here
            raise ValueError(f"a path whose '~user' is a user of this machine, not {value.split('/')[0]!r}") from None
        return value


class PreflightConfig(Model):
    min_free_mb: Annotated[int, Field(ge=0, le=10**9)] = 50
    """Room that must stay free on a target beyond twice the bundle's size."""


class AssetsConfig(Model):
    max_age: Duration = 86400.0
    """A host's asset record older than this is shown as stale (``24h`` by default)."""
    collect: bool = True
    """Collect assets as deploys and rollbacks read the hosts (``rollout assets collect`` always does)."""


class StateConfig(Model):
    """Where rollout keeps its state (events and plant locks); ``ROLLOUT_STATE`` overrides it."""

    url: Annotated[str, Field(min_length=1, max_length=4096)] = "sqlite:///.rollout/state.db"
    """``sqlite:///<path relative to the project>`` or ``sqlite:////<absolute path>``."""


class ProjectConfig(Model):
    """The root of a project: ``rollout.yaml``."""

    version: Literal[1] = 1
    name: Name
    codebase: CodebaseConfig = CodebaseConfig()
    layers: Annotated[list[LayerConfig], Field(min_length=1, max_length=50)]
    overlays: OverlayPolicy = OverlayPolicy()
    strategy: StrategyConfig
    ssh: SshConfig = SshConfig()
    preflight: PreflightConfig = PreflightConfig()
    state: StateConfig = StateConfig()
    assets: AssetsConfig = AssetsConfig()
    hosts_dir: RelPath = ".rollout/hosts"
    """Where the local transport keeps each host's folder: ``<hosts_dir>/<plant>/<host>``."""
    notify: Annotated[list[Webhook], Field(max_length=50)] = []
    """Webhooks told when a wave waits for approval, a plant was rolled back or needs a person,
    and a rollout halted, was aborted or finished."""

    @field_validator("layers")
    @classmethod
    def _unique_layers(cls, layers: list[LayerConfig]) -> list[LayerConfig]:
        _unique([layer.name for layer in layers], "layer")
        _unique([layer.source_dir for layer in layers], "layer source folder")
        return layers

    @field_validator("notify")
    @classmethod
    def _unique_webhooks(cls, hooks: list[Webhook]) -> list[Webhook]:
        _unique([hook.name for hook in hooks], "webhook")  # deliveries are named <hook>:<seq>
        return hooks


def _unique(names: list[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{what} names to be unique; {name!r} appears twice")
        seen.add(name)
