"""Loading a project folder: ``rollout.yaml``, plants, inventories, playbooks, overlays.

Every file is read and validated once; all problems found are reported together, so one
``rollout validate`` lists everything there is to fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType

from rollout.config.codebase import REF, Release, open_release
from rollout.config.models import PlaybookCheck, PlaybookStep, ProjectConfig
from rollout.config.models.validation import validate_doc
from rollout.config.overlays import ARCHETYPES_DIR, Overlay, read_overlay
from rollout.config.plants import INVENTORIES_DIR, PLANTS_DIR, Plant, load_plants, plant_files
from rollout.config.secrets import Vault
from rollout.config.yamlfile import YamlDoc, format_path, read_yaml
from rollout.core.fanout import Failed, fan_out
from rollout.errors import ConfigError, Problem, ReleaseError

__all__ = ["INVENTORIES_DIR", "PLANTS_DIR", "PROJECT_FILE", "Plant", "Project", "find_project", "load_project"]

PROJECT_FILE = "rollout.yaml"
OVERLAYS_DIR = "overlays"
PLAYBOOKS_DIR = "playbooks"


@dataclass(frozen=True)
class Project:
    root: Path
    config: ProjectConfig
    doc: YamlDoc
    """``rollout.yaml`` as parsed, to locate problems the planner finds."""
    plants: Mapping[str, Plant]
    plant_overlays: Mapping[str, Overlay]
    archetype_overlays: Mapping[str, Overlay]
    vault: Vault = field(default_factory=Vault, compare=False)
    """Decrypts the ``!vault`` values of values files, with the password it was given."""
    with_overlays: bool = True
    """False when loaded for a verb that renders nothing (plan, status): the overlays were not read."""

    def overlays_for(self, plant: Plant) -> list[Overlay]:
        """The overlays of a plant in merge order: archetype, then plant."""
        self.need_overlays()
        found = [self.archetype_overlays.get(plant.config.archetype), self.plant_overlays.get(plant.name)]
        return [o for o in found if o is not None]

    def need_overlays(self) -> None:
        """Refuse to render from a project loaded without its overlays: the result would be wrong."""
        if not self.with_overlays:
            raise RuntimeError("this project was loaded without its overlays (load_project(..., overlays=False))")

    def plant(self, name: str) -> Plant:
        if name not in self.plants:
            close = difflib.get_close_matches(name, list(self.plants), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError.one(
                "--plant",
                f"no plant named {name!r}{hint}",
                expected=f"one of the {len(self.plants)} plants in {PLANTS_DIR}/",
            )
        return self.plants[name]

    def release(self, ref: str | None, option: str = "--release") -> Release:
        """The code base at ``ref`` (default: ``codebase.ref`` of ``rollout.yaml``)."""
        codebase = self.config.codebase
        repo = Path(codebase.repo)
        repo_dir = repo if repo.is_absolute() else self.root / repo
        try:
            return open_release(repo_dir, codebase.path, ref or codebase.ref, codebase.repo)
        except ReleaseError as exc:
            raise ReleaseError([self._locate(p, ref, option) for p in exc.problems]) from None

    def _locate(self, problem: Problem, ref: str | None, option: str) -> Problem:
        """Name the setting at fault: the command-line option, or the key in rollout.yaml."""
        if not problem.location.startswith("codebase."):
            return problem
        if problem.location == REF and ref:
            return Problem("(command line)", option, None, problem.expected, problem.found, problem.message)
        line = self.doc.line_of(tuple(problem.location.split(".")))
        return Problem(PROJECT_FILE, problem.location, line, problem.expected, problem.found, problem.message)


def find_project(start: Path) -> Path:
    """The nearest folder from ``start`` upward that holds ``rollout.yaml``."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / PROJECT_FILE).is_file():
            return folder
    raise ConfigError.one(
        str(start), f"no {PROJECT_FILE} here or in any parent folder", expected="a project folder (or -C DIR)"
    )


def load_project(root: Path, overlays: bool = True) -> Project:
    """Read and validate the whole project at ``root``; without ``overlays`` for a verb that renders
    nothing (plan, status): they are neither read nor checked (``validate`` checks them)."""
    problems: list[Problem] = []
    doc = _attempt(problems, lambda: read_yaml(root / PROJECT_FILE, PROJECT_FILE))
    config = _attempt(problems, lambda: validate_doc(ProjectConfig, doc)) if doc else None
    files = plant_files(root)
    plants = load_plants(root, files, config, problems)
    if config is not None:
        problems.extend(_playbook_problems(root, config))
    names = {p.stem for p in files}
    complete = len(plants) == len(names)  # archetypes are known only if every plant loaded
    plant_overlays, archetype_overlays = (
        _load_overlays(root, names, plants if complete else None, problems) if overlays else ({}, {})
    )
    if problems or config is None or doc is None:
        raise ConfigError(problems or [Problem(PROJECT_FILE, message="invalid project")])
    return Project(
        root,
        config,
        doc,
        MappingProxyType(plants),
        MappingProxyType(plant_overlays),
        MappingProxyType(archetype_overlays),
        with_overlays=overlays,
    )


def _attempt(problems: list[Problem], action):  # type: ignore[no-untyped-def]
    """Run ``action``; record its ConfigError and return None instead of raising."""
    try:
        return action()
    except ConfigError as exc:
        problems.extend(exc.problems)
        return None


def _playbook_problems(root: Path, config: ProjectConfig) -> list[Problem]:
    problems: list[Problem | None] = []
    for i, layer in enumerate(config.layers):
        refs: list[tuple[str, str]] = []
        if isinstance(layer.activation, PlaybookStep):
            refs.append((format_path(("layers", i, "activation", "playbook")), layer.activation.playbook))
        if isinstance(layer.restart, PlaybookStep):
            refs.append((format_path(("layers", i, "restart", "playbook")), layer.restart.playbook))
        for j, check in enumerate(layer.checks):
            if isinstance(check, PlaybookCheck):
                refs.append((format_path(("layers", i, "checks", j, "playbook")), check.playbook))
        problems.extend(_check_playbook(root, where, rel) for where, rel in refs)
    return [p for p in problems if p is not None]


def _check_playbook(root: Path, where: str, rel: str) -> Problem | None:
    if PurePosixPath(rel).parts[0] != PLAYBOOKS_DIR:
        return Problem(
            PROJECT_FILE,
            where,
            message=f"playbook {rel!r} is outside {PLAYBOOKS_DIR}/",
            expected=f"a path under {PLAYBOOKS_DIR}/",
        )
    path = root / rel
    if path.is_symlink() or not path.is_file():
        return Problem(PROJECT_FILE, where, message=f"playbook {rel!r} does not exist", expected="a playbook file")
    try:
        doc = read_yaml(path, rel)
    except ConfigError as exc:
        return exc.problems[0]
    if not isinstance(doc.data, list) or not doc.data:
        return doc.problem((), "not a playbook", expected="a list of plays")
    for k, play in enumerate(doc.data):
        if not isinstance(play, dict) or not ({"hosts", "import_playbook"} & set(play)):
            return doc.problem((k,), "not a play", expected="a mapping with 'hosts' (or 'import_playbook')")
    return None


def _load_overlays(
    root: Path, names: set[str], plants: dict[str, Plant] | None, problems: list[Problem]
) -> tuple[dict[str, Overlay], dict[str, Overlay]]:
    """Overlays by plant and by archetype; ``plants`` is None when some plant failed to load."""
    folder = root / OVERLAYS_DIR
    if not folder.exists() or not names:  # with no plant at all, "unknown plant" would only add noise
        return {}, {}
    if folder.is_symlink() or not folder.is_dir():
        problems.append(Problem(f"{OVERLAYS_DIR}/", message="not a folder (symlinks are refused)"))
        return {}, {}
    archetypes = {p.config.archetype for p in plants.values()} if plants is not None else None
    wanted: list[tuple[str, str, str, int]] = []
    """(name, folder, label, how many problems were found before it) of each overlay to read."""
    for entry in sorted(folder.iterdir()):
        rel = f"{OVERLAYS_DIR}/{entry.name}"
        if entry.name == ARCHETYPES_DIR and entry.is_dir() and not entry.is_symlink():
            for sub in sorted(entry.iterdir()):
                sub_rel = f"{rel}/{sub.name}"
                known = archetypes is None or _known(sub.name, archetypes, sub_rel, "archetype", problems)
                if known and _is_folder(sub, sub_rel, problems):
                    wanted.append((sub.name, sub_rel, f"archetype:{sub.name}", len(problems)))
        elif entry.name == "README.md" and entry.is_file():
            continue
        elif _known(entry.name, names, rel, "plant", problems) and _is_folder(entry, rel, problems):
            wanted.append((entry.name, rel, f"plant:{entry.name}", len(problems)))
    return _read_overlays(root, wanted, problems)


def _read_overlays(
    root: Path, wanted: list[tuple[str, str, str, int]], problems: list[Problem]
) -> tuple[dict[str, Overlay], dict[str, Overlay]]:
    """Read the overlays on every core (each folder is independent of the others), by plant and by
    archetype; each one's problems go where a reading in turn would have put them."""
    plant_overlays: dict[str, Overlay] = {}
    archetype_overlays: dict[str, Overlay] = {}
    read = fan_out(wanted, lambda item: read_overlay(root, item[1], item[2]))
    found_before = list(problems)
    problems.clear()
    taken = 0
    for (name, _, label, before), overlay in zip(wanted, read, strict=True):
        problems.extend(found_before[taken:before])
        taken = before
        if isinstance(overlay, Failed):
            problems.extend(overlay.problems)
        elif overlay:
            (archetype_overlays if label.startswith("archetype:") else plant_overlays)[name] = overlay
    problems.extend(found_before[taken:])
    return plant_overlays, archetype_overlays


def _known(name: str, names: set[str], rel: str, what: str, problems: list[Problem]) -> bool:
    if name in names:
        return True
    close = difflib.get_close_matches(name, sorted(names), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    problems.append(
        Problem(
            rel,
            message=f"overlay for {what} {name!r}, which does not exist{hint}",
            expected=f"a folder named after one of this project's {what}s",
        )
    )
    return False


def _is_folder(path: Path, rel: str, problems: list[Problem]) -> bool:
    if path.is_symlink() or not path.is_dir():
        problems.append(Problem(rel, message="not a folder (symlinks are refused)", expected="an overlay folder"))
        return False
    return True
