"""The merge rule base < archetype < plant, with the provenance of every value."""

from __future__ import annotations

import pytest

from rollout.config.yamlfile import parse_yaml
from rollout.core.values import merge_values
from rollout.errors import ConfigError

BASE = """
port: 8000
lines: [a, b]
kpi:
  oee: 0.85
  quality: 0.99
sensors: {}
nothing: null
"""


def merged(*overlays: tuple[str, str]):
    base = parse_yaml(BASE, "base.yaml")
    docs = [(label, parse_yaml(text, f"{label}.yaml")) for label, text in overlays]
    return merge_values(base, docs)


@pytest.mark.parametrize(
    ("overlays", "key", "value", "layer"),
    [
        ((), ("port",), 8000, "base"),
        ((("archetype:a", "port: 1"),), ("port",), 1, "archetype:a"),
        ((("archetype:a", "port: 1"), ("plant:p", "port: 2")), ("port",), 2, "plant:p"),
        ((("archetype:a", "port: 1"), ("plant:p", "lines: [c]")), ("port",), 1, "archetype:a"),
        ((("plant:p", "lines: [c]"),), ("lines",), ["c"], "plant:p"),  # lists replace whole
        ((("plant:p", "kpi: {oee: 0.7}"),), ("kpi", "oee"), 0.7, "plant:p"),
        ((("plant:p", "kpi: {oee: 0.7}"),), ("kpi", "quality"), 0.99, "base"),  # siblings kept
        ((("plant:p", "sensors: {s1: {unit: C}}"),), ("sensors", "s1", "unit"), "C", "plant:p"),  # open map
        (
            (("archetype:a", "sensors: {s1: {unit: C}}"), ("plant:p", "sensors: {s1: {unit: F}}")),
            ("sensors", "s1", "unit"),
            "F",
            "plant:p",
        ),
        ((("plant:p", "kpi: null"),), ("kpi",), None, "plant:p"),  # null replaces anything
        ((("plant:p", "nothing: {a: 1}"),), ("nothing", "a"), 1, "plant:p"),  # a null base takes any kind
    ],
)
def test_merge_and_provenance(overlays, key, value, layer) -> None:
    result = merged(*overlays)
    node = result.values
    for part in key:
        node = node[part]
    assert node == value
    assert result.sources[key].layer == layer


def test_provenance_points_at_file_and_line() -> None:
    result = merged(("plant:p", "# comment\nkpi:\n  oee: 0.7\n"))
    source = result.sources[("kpi", "oee")]
    assert (source.file, source.line) == ("plant:p.yaml", 3)
    assert result.sources[("port",)].line == 2  # BASE starts with a blank line


def test_empty_open_mapping_is_a_leaf_until_filled() -> None:
    assert ("sensors",) in merged().sources
    filled = merged(("plant:p", "sensors: {s1: 1}"))
    assert ("sensors",) not in filled.sources and ("sensors", "s1") in filled.sources


@pytest.mark.parametrize(
    ("overlay", "fragment"),
    [
        ("prot: 1", "did you mean 'port'"),
        ("kpi: {oe: 1}", "did you mean 'oee'"),
        ("kpi: 0.9", "changes the kind"),
        ("lines: {a: 1}", "changes the kind"),
        ("port: [1]", "changes the kind"),
        ("- a", "wrong top level"),
    ],
)
def test_overlay_mistakes_are_refused(overlay: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        merged(("plant:p", overlay))
    assert fragment in str(info.value)
    assert info.value.problems[0].file == "plant:p.yaml"


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        merged(("plant:p", "prot: 1\nkpi: 3\n"))
    assert len(info.value.problems) == 2


def test_base_is_not_mutated_by_merging() -> None:
    base = parse_yaml(BASE, "base.yaml")
    merge_values(base, [("plant:p", parse_yaml("kpi: {oee: 0.1}\nlines: [z]", "p.yaml"))])
    assert base.data["kpi"]["oee"] == 0.85 and base.data["lines"] == ["a", "b"]
