"""A JUnit XML report of a rollout, for CI: one test case per plant and layer."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from rollout.state.journal import JournalEvent


def write_junit(path: Path, rollout: str, layers: list[str], plants: list[str], events: list[JournalEvent]) -> None:
    """Failures are the layers whose step or check failed; plants never reached are skipped."""
    suite = ET.Element("testsuite", name=f"rollout {rollout}")
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for plant in plants:
        mine = [e.event for e in events if e.event.plant == plant]
        kinds = {e.kind for e in mine}
        failed = {e.layer: str(e.detail.get("reason", "")) for e in mine if e.kind == "layer.failed" and e.layer}
        preflight = next((str(e.detail.get("reason", "")) for e in mine if e.kind == "plant.preflight_failed"), None)
        skipped = next((str(e.detail.get("reason", "")) for e in mine if e.kind == "plant.skipped"), None)
        rolled_back = bool(kinds & {"plant.rolled_back", "plant.attention"})
        for layer in layers:
            case = ET.SubElement(suite, "testcase", classname=f"rollout.{plant}", name=f"{plant}/{layer}")
            counts["tests"] += 1
            if preflight is not None:
                ET.SubElement(case, "error", message=f"preflight failed: {preflight}")
                counts["errors"] += 1
            elif layer in failed:
                ET.SubElement(case, "failure", message=failed[layer][:500]).text = failed[layer]
                counts["failures"] += 1
            elif skipped is not None or "plant.started" not in kinds:
                ET.SubElement(case, "skipped", message=skipped or "not reached")
                counts["skipped"] += 1
            elif rolled_back:
                ET.SubElement(case, "system-out").text = "passed, then rolled back with the plant"
    for key, value in counts.items():
        suite.set(key, str(value))
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
