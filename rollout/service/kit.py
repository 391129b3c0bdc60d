"""A plant's kit: the project files its agent's executor reads on the node (``rollout.yaml``, the
plant's metadata and inventory with its ``group_vars``/``host_vars``, the playbooks), never the
code base, the overlays or another plant's files. Read here; packed by ``core.agentwork``."""

from __future__ import annotations

from pathlib import Path

from rollout.config.project import PLAYBOOKS_DIR, PROJECT_FILE, Plant, Project

MAX_KIT_BYTES = 64 * 1024 * 1024
"""A kit is configuration; one this big means a wrong folder was swept in."""


def kit_files(project: Project, plant: Plant) -> dict[str, tuple[bytes, int]]:
    """Path (relative to the project) -> (content, mode) of every file the plant's agent needs."""
    root = project.root
    wanted = [root / PROJECT_FILE, root / plant.file, root / plant.inventory.file]
    inventory_dir = (root / plant.inventory.file).parent
    for extra in ("group_vars", "host_vars"):
        wanted += _tree(inventory_dir / extra)
    wanted += _tree(root / PLAYBOOKS_DIR)
    files: dict[str, tuple[bytes, int]] = {}
    for path in wanted:
        if path.is_file():
            relative = path.resolve().relative_to(root.resolve()).as_posix()
            files[relative] = (path.read_bytes(), path.stat().st_mode & 0o777)
    return files


def _tree(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
