"""The Jinja2 environments that templates render in: sandboxed, bounded in what they may build,
with the filters and globals templates see, and how a template's failure becomes a Problem."""

from __future__ import annotations

import itertools
import json
import shlex
from collections.abc import Iterable
from typing import Any

import jinja2
import jinja2.bccache
import yaml
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEnvironment

from rollout.errors import Problem, RenderError

MAX_OUTPUT_BYTES = 64 * 1024 * 1024
MAX_SEQUENCE_PRODUCT = 1024 * 1024
OUTPUT_BATCH = 32
"""Template output chunks counted at a time against MAX_OUTPUT_BYTES."""


_DICT_ATTRIBUTES = frozenset(dir(dict))
"""Every attribute a plain dict has: all it has, its instances holding none of their own."""


def _to_json(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, indent=indent, sort_keys=True, ensure_ascii=False)


def _to_yaml(value: Any) -> str:
    return str(yaml.safe_dump(value, sort_keys=True, default_flow_style=False, allow_unicode=True)).rstrip("\n")


class _Bounded(SandboxedEnvironment):
    """The code base's own templates: no Python internals, no huge strings or numbers.

    Sandboxed too: rendering happens on ``validate`` and ``render``, which must never run
    commands or read files, whatever a commit of the code base holds. Values may be changed
    here: every file renders with its own copy of them.
    """

    intercepted_binops = frozenset({"*", "**"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        # ``values.port`` on a plain dict is its key: looked up straight away, where Jinja's lookup
        # first raises and catches an AttributeError (millions of times over a fleet's templates).
        # Any name a dict does have (``values.items``) still goes the general way.
        if type(obj) is dict and type(attribute) is str and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)

    def call_binop(self, context: jinja2.runtime.Context, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "**" and isinstance(right, (int, float)) and abs(right) > 1000:
            raise SecurityError("exponent too large for a template")
        if operator_ == "*":
            size = _sequence_size(left, right)
            if size > MAX_SEQUENCE_PRODUCT:
                raise SecurityError("string or list repetition too large for a template")
        return super().call_binop(context, operator_, left, right)


class _Sandbox(_Bounded, ImmutableSandboxedEnvironment):
    """The immutable sandbox, for plants whose overlays bring a template."""


def _sequence_size(left: Any, right: Any) -> int:
    for seq, count in ((left, right), (right, left)):
        if isinstance(seq, (str, list, tuple)) and isinstance(count, int):
            return len(seq) * max(count, 0)
    return 0


def _fail(message: str) -> None:
    """``{{ fail("...") }}``: a template refuses values it cannot work with."""
    raise jinja2.TemplateRuntimeError(str(message))


class MemoryBytecodeCache(jinja2.BytecodeCache):
    """Compiled templates shared by every plant's environment; Jinja checks the source checksum."""

    def __init__(self) -> None:
        self._store: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        if bucket.key in self._store:
            bucket.bytecode_from_string(self._store[bucket.key])

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self._store[bucket.key] = bucket.bytecode_to_string()

    def clear(self) -> None:
        self._store.clear()


def environment(
    sandboxed: bool, loader: jinja2.BaseLoader, bytecode: jinja2.BytecodeCache | None = None
) -> jinja2.Environment:
    cls: type[jinja2.Environment] = _Sandbox if sandboxed else _Bounded
    env = cls(
        bytecode_cache=bytecode,
        loader=loader,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        auto_reload=False,
        cache_size=-1,
    )
    env.filters["to_json"] = _to_json
    env.filters["to_yaml"] = _to_yaml
    env.filters["quote"] = shlex.quote  # for values that end up in a check's or step's shell command
    env.globals["fail"] = _fail
    del env.globals["lipsum"]  # placeholder text of unbounded size (lipsum(10**5) burns a minute): no use here
    return env


def bounded(chunks: Iterable[str], display: str) -> bytes:
    parts: list[str] = []
    size = 0
    pending = iter(chunks)
    # A few chunks at a time: templates yield very many small ones, and counting each in Python shows.
    while batch := list(itertools.islice(pending, OUTPUT_BATCH)):
        size += sum(map(len, batch))
        if size > MAX_OUTPUT_BYTES:
            raise RenderError([Problem(display, message=f"template output larger than {MAX_OUTPUT_BYTES} bytes")])
        parts += batch
    return "".join(parts).encode("utf-8")


def template_problem(exc: Exception, display: str, displays: set[str]) -> Problem:
    line, where = None, display
    tb = exc.__traceback__
    while tb is not None:  # Jinja maps frames to template lines; keep the deepest template frame
        filename = tb.tb_frame.f_code.co_filename
        if filename in displays:
            where, line = filename, tb.tb_lineno
        tb = tb.tb_next
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return Problem(exc.filename or where, line=exc.lineno, message=f"template syntax error: {exc.message}")
    if isinstance(exc, jinja2.UndefinedError):
        return Problem(
            where,
            line=line,
            message=f"undefined value: {exc.message}",
            expected="a value defined in values or the template context",
        )
    if isinstance(exc, SecurityError):
        return Problem(where, line=line, message=f"not allowed in a sandboxed template: {exc}")
    if isinstance(exc, jinja2.TemplateRuntimeError):
        return Problem(where, line=line, message=f"template refused its values: {exc}")
    if isinstance(exc, jinja2.TemplateNotFound):
        return Problem(where, line=line, message=f"includes {exc.name!r}, which is not a template of the code base")
    if isinstance(exc, RecursionError):  # Python's own wording varies with where the limit struck
        return Problem(where, line=line, message="template recursion too deep: a macro or include that never ends")
    return Problem(where, line=line, message=f"template failed: {type(exc).__name__}: {exc}")
