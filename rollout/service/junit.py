"""A JUnit XML report of a rollout, for CI: one test case per plant and layer."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from rollout.config.project import Project
from rollout.core.projection import PlantState, RolloutState, fold
from rollout.core.spec import RolloutSpec
from rollout.service.state import open_state, rehearsal_journal


def junit_report(project: Project, rollout: str, path: Path, rehearsal: bool = False) -> None:
    """Write the JUnit report of ``rollout`` (of the rehearsal's own state when ``rehearsal``)."""
    journal = rehearsal_journal(project) if rehearsal else open_state(project)
    record = journal.rollout(rollout)
    plants = RolloutSpec.from_json(record.spec).plants if record else []
    layers = [layer.name for layer in project.config.layers]
    write_junit(path, rollout, layers, plants, fold(e.event for e in journal.events(rollout=rollout)))


def write_junit(path: Path, rollout: str, layers: list[str], plants: list[str], state: RolloutState) -> None:
    """Failures are the layers whose step or check failed; plants never reached are skipped.

    Read from the rollout's folded state: a plant's latest outcome decides its cases."""
    suite = ET.Element("testsuite", name=f"rollout {rollout}")
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for plant in plants:
        known = state.plants.get(plant) or PlantState(plant)
        reached = known.outcome not in (None, "skipped") or known.in_flight
        for layer in layers:
            case = ET.SubElement(suite, "testcase", classname=f"rollout.{plant}", name=f"{plant}/{layer}")
            counts["tests"] += 1
            if known.outcome == "preflight_failed":
                ET.SubElement(case, "error", message=f"preflight failed: {known.reason}")
                counts["errors"] += 1
            elif layer in known.failed_layers:
                reason = known.failed_layers[layer]
                ET.SubElement(case, "failure", message=reason[:500]).text = reason
                counts["failures"] += 1
            elif not reached:
                ET.SubElement(case, "skipped", message=known.reason or "not reached")
                counts["skipped"] += 1
            elif known.outcome in ("rolled_back", "attention"):
                ET.SubElement(case, "system-out").text = "passed, then rolled back with the plant"
    for key, value in counts.items():
        suite.set(key, str(value))
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
