"""YAML loading: YAML 1.2 typing, positions of every key, bounded size, clear errors."""

from __future__ import annotations

import pytest

from rollout.config.yamlfile import MAX_NODES, format_path, parse_yaml
from rollout.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("v: 22:00", "22:00"),  # YAML 1.1 would read base-60 1320
        ("v: no", "no"),  # YAML 1.1 would read False
        ("v: on", "on"),
        ("v: 0755", "0755"),  # no surprise octal
        ("v: 2026-11-21", "2026-11-21"),  # no date objects
        ("v: true", True),
        ("v: 12", 12),
        ("v: -3", -3),
        ("v: 0x1f", 31),
        ("v: 1.5", 1.5),
        ("v: 1.0e3", 1000.0),
        ("v: ~", None),
        ("v:", None),
        ("v: 'quoted: yes'", "quoted: yes"),
    ],
)
def test_core_schema_typing(text: str, expected: object) -> None:
    assert parse_yaml(text, "f.yaml").data == {"v": expected}


def test_lines_of_keys_and_items() -> None:
    doc = parse_yaml("a:\n  b:\n    - x\n    - y: 1\nc: 2\n", "f.yaml")
    assert doc.lines[("a",)] == 1
    assert doc.lines[("a", "b")] == 2
    assert doc.lines[("a", "b", 1)] == 4
    assert doc.lines[("a", "b", 1, "y")] == 4
    assert doc.line_of(("c",)) == 5
    assert doc.line_of(("a", "b", 7, "missing")) == 2  # nearest known ancestor


def test_merge_keys_are_resolved() -> None:
    doc = parse_yaml("base: &b {x: 1, y: 2}\nderived:\n  <<: *b\n  y: 3\n", "f.yaml")
    assert doc.data["derived"] == {"x": 1, "y": 3}


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("a: 1\na: 2\n", "duplicate key 'a'", 2),
        ("a: [1,\n", "invalid YAML", 2),
        ("? [x]\n: 1\n", "invalid key", 1),
        ("1: x\n", "invalid key", 1),
        ("a: 1\n---\nb: 2\n", "more than one YAML document", 3),
        ("a: !!python/object:os.system x\n", "invalid value", 1),
    ],
)
def test_errors_name_the_line(text: str, message: str, line: int) -> None:
    with pytest.raises(ConfigError) as info:
        parse_yaml(text, "f.yaml")
    problem = info.value.problems[0]
    assert problem.file == "f.yaml" and message in problem.message and problem.line == line


def test_alias_expansion_is_bounded() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    with pytest.raises(ConfigError) as info:
        parse_yaml("\n".join(lines), "bomb.yaml")
    assert f"over {MAX_NODES} nodes" in info.value.problems[0].message


def test_format_path() -> None:
    assert format_path(("layers", 1, "checks", 0, "url")) == "layers[1].checks[0].url"
    assert format_path(()) == ""
