"""Planning waves from the strategy: selection, order, thresholds and their errors."""

from __future__ import annotations

import textwrap

import pytest

from conftest import MiniProject
from rollout.core.plan import make_plan
from rollout.errors import PlanError
from rollout.service import open_project

PLANTS = {  # name: (archetype, tags)
    "a1": ("assembly", ["eu", "pilot"]),
    "a2": ("assembly", ["eu"]),
    "a3": ("assembly", ["na"]),
    "p1": ("process", ["na"]),
    "p2": ("process", ["apac"]),
    "k1": ("packaging", ["apac"]),
    "k2": ("packaging", ["eu"]),
}


def with_strategy(mini: MiniProject, strategy: str):
    for rel in list((mini.root / "plants").iterdir()):
        rel.unlink()
    mini.remove("overlays")
    for name, (archetype, tags) in PLANTS.items():
        mini.write(
            f"plants/{name}.yaml",
            f"archetype: {archetype}\ntimezone: UTC\nwindows: always\ntags: [{', '.join(tags)}]\n",
        )
        mini.write(f"inventories/{name}.yml", (mini.root / "inventories/p1.yml").read_text())
    text = (mini.root / "rollout.yaml").read_text()
    head = text[: text.index("strategy:")]
    mini.write("rollout.yaml", head + "strategy:\n" + textwrap.indent(textwrap.dedent(strategy).strip() + "\n", "  "))
    mini.commit()
    project = open_project(mini.root)
    return make_plan(project, "v1", "0" * 40)


def test_waves_by_name_tag_archetype_and_remaining(mini: MiniProject) -> None:
    plan = with_strategy(
        mini,
        """
        parallelism: 3
        waves:
          - {name: canary, select: {plants: [a2, a1]}}
          - {name: europe, select: {tags: [eu]}, parallelism: 1}
          - {name: process, select: {archetypes: [process]}, max_failures: "50%", on_failure: rollback_all}
          - {name: rest, select: {remaining: true}, bake: 10m, approval: true}
        """.replace("europe, select: {tags: [eu]}", "europe, select: {tags: [eu], exclude: [a*]}"),
    )
    assert [w.name for w in plan.waves] == ["canary", "europe", "process", "rest"]
    assert [p.name for p in plan.waves[0].plants] == ["a2", "a1"]  # listed order kept
    assert [p.name for p in plan.waves[1].plants] == ["k2"]
    assert [p.name for p in plan.waves[2].plants] == ["p1", "p2"]
    assert [p.name for p in plan.waves[3].plants] == ["a3", "k1"]  # the rest, by name
    assert plan.waves[0].parallelism == 2  # never more than the wave's plants
    assert plan.waves[1].parallelism == 1
    assert plan.waves[2].max_failures == 1 and plan.waves[2].on_failure == "rollback_all"
    assert plan.waves[3].approval and plan.waves[3].bake_s == 600
    assert plan.plant_count == len(PLANTS)


@pytest.mark.parametrize(
    ("threshold", "plants", "allowed"),
    [(0, 7, 0), (2, 7, 2), ("10%", 7, 0), ("15%", 7, 1), ("50%", 7, 3), ("100%", 7, 7)],
)
def test_percentage_thresholds_round_down(mini: MiniProject, threshold, plants: int, allowed: int) -> None:
    value = f'"{threshold}"' if isinstance(threshold, str) else threshold
    plan = with_strategy(mini, f"waves:\n  - {{name: all, select: {{remaining: true}}, max_failures: {value}}}")
    assert len(plan.waves[0].plants) == plants and plan.waves[0].max_failures == allowed
    assert plan.waves[0].describe_failure().startswith(f"after {allowed + 1} failed")


def test_selector_criteria_combine_with_and(mini: MiniProject) -> None:
    plan = with_strategy(
        mini,
        """
        waves:
          - {name: eu-assembly, select: {archetypes: [assembly], tags: [eu]}}
          - {name: rest, select: {remaining: true}}
        """,
    )
    assert [p.name for p in plan.waves[0].plants] == ["a1", "a2"]


@pytest.mark.parametrize(
    ("strategy", "message", "location"),
    [
        (
            "waves:\n  - {name: one, select: {tags: [eu]}}\n  - {name: two, select: {archetypes: [assembly]}}",
            "plant 'a1' is already in wave 'one'",
            "strategy.waves[1].select",
        ),
        ("waves:\n  - {name: one, select: {tags: [eu]}}", "no wave takes plant(s) a3, k1, p1, p2", "strategy.waves"),
        (
            "waves:\n  - {name: one, select: {plants: [a9]}}\n  - {name: r, select: {remaining: true}}",
            "no plant matches 'a9'",
            "strategy.waves[0].select",
        ),
        (
            "waves:\n  - {name: one, select: {tags: [mars]}}\n  - {name: r, select: {remaining: true}}",
            "selects no plant",
            "strategy.waves[0].select",
        ),
        (
            "waves:\n  - {name: one, select: {plants: [a1], exclude: [zz]}}\n  - {name: r, select: {remaining: true}}",
            "no plant matches 'zz'",
            "strategy.waves[0].select",
        ),
    ],
)
def test_plan_errors_name_the_wave(mini: MiniProject, strategy: str, message: str, location: str) -> None:
    with pytest.raises(PlanError) as info:
        with_strategy(mini, strategy)
    problem = info.value.problems[0]
    assert message in problem.message and problem.location == location
    assert problem.file == "rollout.yaml" and problem.line is not None


def test_json_records_follow_execution_order(mini: MiniProject) -> None:
    plan = with_strategy(
        mini, "waves:\n  - {name: c, select: {plants: [k1]}}\n  - {name: r, select: {remaining: true}}"
    )
    records = plan.records()
    assert [r["type"] for r in records[:4]] == ["plan", "wave", "plant", "wave"]
    assert records[2]["plant"] == "k1" and records[2]["layers"] == ["edge", "ingest"]
