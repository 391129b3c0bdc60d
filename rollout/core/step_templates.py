"""The checks and command steps of rollout.yaml as small templates: which of their fields are
templated, and those fields rendered for one host, each problem placed in rollout.yaml."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jinja2

from rollout.config.models import CommandCheck, CommandStep, HttpCheck, LayerConfig, TcpCheck
from rollout.config.project import PROJECT_FILE
from rollout.config.secrets import Vaulted
from rollout.core.sandbox import environment, template_problem
from rollout.errors import Problem


@functools.cache
def _string_env() -> jinja2.Environment:
    """Checks and steps in rollout.yaml are small templates too, rendered sandboxed."""
    env = environment(True, jinja2.DictLoader({}))
    env.finalize = _no_secret
    return env


def _no_secret(value: Any) -> Any:
    """A check's or step's text is shown and journaled: an encrypted value has no place in it."""
    if isinstance(value, Vaulted):
        raise jinja2.TemplateRuntimeError(
            f"{value.location} ({value.file}) is encrypted, and checks and steps are recorded in the clear;"
            " use it in a file of the bundle instead"
        )
    return value


def _is_port(text: str) -> bool:
    return text.isascii() and text.isdigit() and 1 <= int(text) <= 65535  # int('²') fails, though '²'.isdigit()


@functools.lru_cache(maxsize=4096)
def _compiled(text: str) -> jinja2.Template:
    """Each check string is compiled once, however many plants and hosts render it."""
    return _string_env().from_string(text)


def templated(layer: LayerConfig, index: int) -> list[tuple[str, dict[str, str], str]]:
    """(key, templated fields, location in rollout.yaml) of a layer's checks and steps."""
    found: list[tuple[str, dict[str, str], str]] = []
    for j, check in enumerate(layer.checks):
        location = f"layers[{index}].checks[{j}]"
        if isinstance(check, CommandCheck):
            found.append((f"checks.{check.name}", {"command": check.command}, location))
        elif isinstance(check, HttpCheck):
            found.append((f"checks.{check.name}", {"url": check.url}, location))
        elif isinstance(check, TcpCheck):
            found.append((f"checks.{check.name}", {"host": check.host, "port": str(check.port)}, location))
    # Commands are templates wherever they appear, the stop step included.
    for key, step in (("restart", layer.restart), ("stop", layer.stop)):
        if isinstance(step, CommandStep):
            found.append((key, {"command": step.command}, f"layers[{index}].{key}"))
    return found


def parse_location(location: str) -> tuple[str | int, ...]:
    parts: list[str | int] = []
    for piece in location.replace("[", ".").replace("]", "").split("."):
        parts.append(int(piece) if piece.isdigit() else piece)
    return tuple(parts)


def unique_problems(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


def render_fields(
    fields: dict[str, str],
    context: dict[str, Any],
    location: str,
    problems: list[Problem],
    line: Callable[[str], int | None],
) -> dict[str, str]:
    """The fields rendered with ``context``; each problem is added to ``problems``, at ``line`` of its location."""
    rendered = {}
    for name, text in fields.items():
        where = f"{location}.{name}"
        try:
            rendered[name] = _compiled(text).render(context)
        except Exception as exc:  # template code can raise anything; each is bad input
            problem = template_problem(exc, PROJECT_FILE, set())
            problems.append(Problem(PROJECT_FILE, where, line(where), problem.expected, "", problem.message))
            continue
        if not rendered[name].strip():  # an empty command passes every time; an empty URL never can
            problems.append(
                Problem(
                    PROJECT_FILE,
                    where,
                    line(where),
                    f"a non-empty {name}",
                    repr(rendered[name]),
                    f"renders to nothing for plant {context['plant']['name']}",
                )
            )
        elif name == "port" and not _is_port(rendered[name]):
            problems.append(
                Problem(
                    PROJECT_FILE,
                    where,
                    line(where),
                    "a TCP port (1-65535)",
                    repr(rendered[name]),
                    f"renders to an invalid port for plant {context['plant']['name']}",
                )
            )
    return rendered
