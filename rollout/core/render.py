"""Rendering the code base with a plant's overlays into one bundle per layer. Pure: no I/O.

* Files ending in ``.j2`` are Jinja2 templates; they are rendered and lose the suffix.
  A template whose name starts with ``_`` is a partial: it can be included, and is not
  itself part of the bundle. Every other file is copied as it is.
* Undefined names are errors (``StrictUndefined``), never an empty string.
* A plant whose overlays bring any template has all its templates rendered in an
  immutable sandbox, so overlay content can neither reach Python internals nor change
  shared values, even through a base template that includes it. The code base's own
  templates render in a sandbox too (one that lets them change their copy of values):
  no template can run commands or read files, and none can build huge strings.
* ``{{ fail("why") }}`` lets a template refuse values it cannot work with.
* Templates see ``values`` (merged), ``plant``, ``release``, ``layer``, ``hosts`` (the
  layer's hosts) and ``groups`` (every inventory group's hosts); never connection
  variables (``ansible_*``).
* Plants whose inputs are equal share one rendering: the key is a hash of exactly the
  inputs that the layer's templates read.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import operator
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import jinja2
import jinja2.bccache
import jinja2.meta
import jinja2.nodes
import yaml
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEnvironment

from rollout.config.codebase import Release
from rollout.config.filenames import clash_problems, name_problems
from rollout.config.models import CommandCheck, CommandStep, HttpCheck, LayerConfig, TcpCheck
from rollout.config.overlays import policy_problems
from rollout.config.project import PROJECT_FILE, Plant, Project
from rollout.config.yamlfile import YamlDoc, parse_yaml
from rollout.core.bundle import Bundle, BundleFile, sha256_json
from rollout.core.values import MergedValues, merge_values, plain_copy
from rollout.errors import ConfigError, Problem, RenderError

RENDERER_VERSION = 1
TEMPLATE_SUFFIX = ".j2"
MAX_OUTPUT_BYTES = 64 * 1024 * 1024
MAX_SEQUENCE_PRODUCT = 1024 * 1024
OUTPUT_BATCH = 32
"""Template output chunks counted at a time against MAX_OUTPUT_BYTES."""
_CONTEXT_NAMES = ("values", "plant", "release", "layer", "hosts", "groups")

Reuse = Callable[[Bundle], tuple[BundleFile, ...] | None]
"""Given a bundle without its files (release, plant, overlay and inputs hashes set), the files
of that same bundle rendered before, or None to render them now."""


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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


class _MemoryBytecodeCache(jinja2.BytecodeCache):
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


def _environment(
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


@dataclass(frozen=True)
class _Source:
    content: bytes
    mode: int
    display: str
    from_overlay: bool


@dataclass
class _Shared:
    """What every plant's file set of one Renderer shares: compiled code and template analyses."""

    trusted_code: _MemoryBytecodeCache = field(default_factory=_MemoryBytecodeCache)
    sandboxed_code: _MemoryBytecodeCache = field(default_factory=_MemoryBytecodeCache)
    analysis: dict[str, tuple[set[str], set[str] | None, list[str | None]]] = field(default_factory=dict)


class _FileSet:
    """The code base at a release with one plant's overlay files laid over it."""

    def __init__(self, release: Release, overlay_files: dict[str, tuple[bytes, str]], shared: _Shared) -> None:
        self.sources: dict[str, _Source] = {
            path: _Source(data, release.modes[path], release.display(path), False)
            for path, data in release.files.items()
        }
        for path, (data, display) in overlay_files.items():
            mode = release.modes.get(path, 0o644)
            self.sources[path] = _Source(data, mode, display, True)
        self.sandboxed = any(s.from_overlay and path.endswith(TEMPLATE_SUFFIX) for path, s in self.sources.items())
        bytecode = shared.sandboxed_code if self.sandboxed else shared.trusted_code
        self.env = _environment(self.sandboxed, jinja2.FunctionLoader(self._load), bytecode)
        self._analysis = shared.analysis
        self._layer_paths: dict[str, list[str]] = {}
        self._reads: dict[tuple[str, ...], tuple[frozenset[str], frozenset[str] | None]] = {}
        self._names: list[Problem] | None = None

    def _load(self, name: str) -> tuple[str, str, Callable[[], bool]] | None:
        source = self.sources.get(name)
        if source is None or not name.endswith(TEMPLATE_SUFFIX):
            return None
        return source.content.decode("utf-8"), source.display, lambda: True

    def layer_paths(self, layer: LayerConfig) -> list[str]:
        """The layer's source paths, sorted (shared by every caller: not to be changed)."""
        if layer.source_dir not in self._layer_paths:
            prefix = "" if layer.source_dir == "." else layer.source_dir.rstrip("/") + "/"
            self._layer_paths[layer.source_dir] = sorted(p for p in self.sources if p.startswith(prefix))
        return self._layer_paths[layer.source_dir]

    def reads(self, templates: Iterable[str]) -> tuple[frozenset[str], frozenset[str] | None]:
        """Context names, and top-level value keys (None: all), that these templates read."""
        key = tuple(templates)
        if key not in self._reads:  # the same for every plant sharing this file set
            self._reads[key] = self._find_reads(key)
        return self._reads[key]

    def _find_reads(self, templates: Iterable[str]) -> tuple[frozenset[str], frozenset[str] | None]:
        names: set[str] = set()
        keys: set[str] | None = set()
        pending, seen = list(templates), set()
        while pending:
            name = pending.pop()
            if name in seen:
                continue
            seen.add(name)
            used, used_keys, includes = self._analyse(name)
            names |= used
            keys = None if keys is None or used_keys is None else keys | used_keys
            if includes is None:
                return frozenset(_CONTEXT_NAMES), None
            pending.extend(includes)
        return frozenset(names), (frozenset(keys) if keys is not None else None)

    def _analyse(self, name: str) -> tuple[set[str], set[str] | None, list[str] | None]:
        source = self.sources[name]
        digest = _digest(source.content)
        if digest not in self._analysis:  # the analysis depends on the source text alone
            ast = self._parse(name, source)
            used = set(jinja2.meta.find_undeclared_variables(ast)) & set(_CONTEXT_NAMES)
            self._analysis[digest] = (used, _value_keys(ast), list(jinja2.meta.find_referenced_templates(ast)))
        used, keys, refs = self._analysis[digest]
        if any(ref is None or ref not in self.sources for ref in refs):
            return used, keys, None  # dynamic or missing: the render will tell; key on everything
        return used, keys, [ref for ref in refs if ref is not None]

    def _parse(self, name: str, source: _Source) -> jinja2.nodes.Template:
        try:
            return self.env.parse(source.content.decode("utf-8"), name, source.display)
        except jinja2.TemplateSyntaxError as exc:
            raise RenderError(
                [Problem(source.display, line=exc.lineno, message=f"template syntax error: {exc.message}")]
            ) from None
        except UnicodeDecodeError:
            raise RenderError([Problem(source.display, message="template is not UTF-8 text")]) from None

    def render(self, name: str, context: dict[str, Any]) -> bytes:
        source = self.sources[name]
        try:
            template = self.env.get_template(name)
            return _bounded(template.generate(context), source.display)
        except RenderError:
            raise
        except Exception as exc:  # template code can raise anything; each is bad input
            raise RenderError([_template_problem(exc, source.display, self._displays())]) from None

    def _displays(self) -> set[str]:
        return {s.display for s in self.sources.values()}

    def name_problems(self, release_id: str) -> list[Problem]:
        """Names that clash once the overlays' files lie beside the code base's (worked out once)."""
        if self._names is None:  # each name was checked where it entered: only overlays bring a clash here
            overlaid = any(s.from_overlay for s in self.sources.values())
            displays = {path: s.display for path, s in self.sources.items()}
            place = f"overlay files laid over the code base at release {release_id}"
            self._names = clash_problems(displays, place) if overlaid else []
        return self._names


def _value_keys(ast: jinja2.nodes.Template) -> set[str] | None:
    """Top-level keys read as ``values.key`` or ``values['key']``; None if values is used whole."""
    keys: set[str] = set()
    accessed = 0
    for node in ast.find_all((jinja2.nodes.Getattr, jinja2.nodes.Getitem)):
        assert isinstance(node, (jinja2.nodes.Getattr, jinja2.nodes.Getitem))
        target = node.node
        if isinstance(target, jinja2.nodes.Name) and target.name == "values":
            if isinstance(node, jinja2.nodes.Getattr):
                keys.add(node.attr)
            elif isinstance(node.arg, jinja2.nodes.Const) and isinstance(node.arg.value, str):
                keys.add(node.arg.value)
            else:
                return None
            accessed += 1
    total = sum(1 for n in ast.find_all(jinja2.nodes.Name) if n.name == "values" and n.ctx == "load")
    return keys if total == accessed else None


def _bounded(chunks: Iterable[str], display: str) -> bytes:
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


def _template_problem(exc: Exception, display: str, displays: set[str]) -> Problem:
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


class Renderer:
    """Renders every plant and layer of a project at one release."""

    def __init__(self, project: Project, release: Release) -> None:
        self.project = project
        self.release = release
        self.base_values = self._base_values()
        self._filesets: dict[str, _FileSet] = {}
        self._shared = _Shared()
        self._memo: dict[str, tuple[BundleFile, ...]] = {}
        self._values: dict[str, MergedValues] = {}
        self._plant_files: dict[str, tuple[_FileSet, str]] = {}
        """Plant -> its file set and overlay hash, worked out once however often asked for."""
        self._contexts: tuple[str, dict[str, dict[str, Any]]] = ("", {})
        """The plant at hand and its context per layer."""
        self.hits = 0
        """Renderings saved because another plant had equal inputs."""

    def _base_values(self) -> YamlDoc:
        path = self.project.config.codebase.values
        display = self.release.display(path)
        if path not in self.release.files:
            raise ConfigError.one(
                display, "base values file does not exist at this release", expected="a YAML mapping of values"
            )
        try:
            text = self.release.files[path].decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError.one(display, "not UTF-8 text") from None
        return parse_yaml(text, display)

    def values(self, plant: Plant) -> MergedValues:
        """The plant's merged values with the source of each."""
        if plant.name not in self._values:
            layers = [(o.label, o.values) for o in self.project.overlays_for(plant) if o.values is not None]
            self._values[plant.name] = merge_values(self.base_values, layers)
        return self._values[plant.name]

    def check_plant(self, plant: Plant) -> None:
        """Raise every policy and value problem of the plant's overlays at this release."""
        config = self.project.config
        problems: list[Problem] = []
        for overlay in self.project.overlays_for(plant):
            problems += policy_problems(overlay, self.release, config.overlays, config.layers, config.codebase.values)
        try:
            self.values(plant)
        except ConfigError as exc:
            problems += exc.problems
        problems += self._fileset(plant).name_problems(self.release.id)
        missing = [layer for layer in config.layers if not self._fileset(plant).layer_paths(layer)]
        problems += [
            Problem(
                self.release.display(layer.source_dir),
                message=f"layer {layer.name!r} has no files at this release",
                expected=f"a folder {layer.source_dir}/ in the code base",
            )
            for layer in missing
        ]
        if problems:
            raise ConfigError(problems)

    def render_plant(self, plant: Plant, reuse: Reuse | None = None) -> list[Bundle]:
        self.check_plant(plant)
        self.render_steps(plant)
        return [self.render_layer(plant, layer, reuse) for layer in self.project.config.layers]

    def render_steps(self, plant: Plant) -> dict[tuple[str, str], dict[str, dict[str, str]]]:
        """The templated fields of every check and command step, per (layer, host).

        Result: ``{(layer, host): {"checks.<name>" | "restart" | "stop": {field: text}}}``.
        """
        out: dict[tuple[str, str], dict[str, dict[str, str]]] = {}
        problems: list[Problem] = []
        for i, layer in enumerate(self.project.config.layers):
            base = self._context(plant, layer)
            for host in plant.inventory.group_hosts(layer.inventory_group):
                context = {**base, "host": host.template_view()}
                out[(layer.name, host.name)] = {
                    key: self._render_fields(fields, context, location, problems)
                    for key, fields, location in _templated(layer, i)
                }
        if problems:
            raise RenderError(_unique_problems(problems))
        return out

    def _render_fields(
        self, fields: dict[str, str], context: dict[str, Any], location: str, problems: list[Problem]
    ) -> dict[str, str]:
        rendered = {}
        for name, text in fields.items():
            where = f"{location}.{name}"
            try:
                rendered[name] = _compiled(text).render(context)
            except Exception as exc:  # template code can raise anything; each is bad input
                problem = _template_problem(exc, PROJECT_FILE, set())
                problems.append(Problem(PROJECT_FILE, where, self._line(where), problem.expected, "", problem.message))
                continue
            if not rendered[name].strip():  # an empty command passes every time; an empty URL never can
                problems.append(
                    Problem(
                        PROJECT_FILE,
                        where,
                        self._line(where),
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
                        self._line(where),
                        "a TCP port (1-65535)",
                        repr(rendered[name]),
                        f"renders to an invalid port for plant {context['plant']['name']}",
                    )
                )
        return rendered

    def _line(self, where: str) -> int | None:
        return self.project.doc.line_of(_parse_location(where))  # only wanted for a problem

    def render_layer(self, plant: Plant, layer: LayerConfig, reuse: Reuse | None = None) -> Bundle:
        """The plant's bundle of ``layer``; ``reuse`` may supply the files of one rendered before."""
        files = self._fileset(plant)
        paths = files.layer_paths(layer)
        templates = [p for p in paths if p.endswith(TEMPLATE_SUFFIX)]
        names, keys = files.reads(templates)
        context = self._context(plant, layer)
        overlay_files = {p: sha for p, sha in self._overlay_digests(plant).items() if p in paths}
        inputs = _inputs(self.release, layer, context, names, keys, overlay_files)
        inputs_hash = sha256_json(inputs)
        head = Bundle(
            plant=plant.name,
            layer=layer.name,
            release_id=self.release.id,
            commit=self.release.commit,
            content_hash=self.release.content_hash,
            overlay_hash=self.overlay_hash(plant),
            inputs_hash=inputs_hash,
            files=(),
        )
        if inputs_hash in self._memo:
            self.hits += 1
        else:
            known = reuse(head) if reuse is not None else None
            self._memo[inputs_hash] = known if known is not None else _render_files(files, layer, paths, context)
        return replace(head, files=self._memo[inputs_hash])

    def overlay_hash(self, plant: Plant) -> str:
        """Hash of everything the plant's overlays bring (values and files)."""
        return self._plant(plant)[1]

    def _overlay_hash(self, plant: Plant) -> str:
        overlays = self.project.overlays_for(plant)
        return sha256_json(
            [
                {
                    "label": o.label,
                    "values": o.values.data if o.values else None,
                    "files": {p: _digest(d) for p, d in sorted(o.files.items())},
                }
                for o in overlays
            ]
        )

    def _overlay_digests(self, plant: Plant) -> dict[str, str]:
        merged: dict[str, str] = {}
        for overlay in self.project.overlays_for(plant):
            merged.update({p: _digest(d) for p, d in overlay.files.items()})
        return merged

    def _fileset(self, plant: Plant) -> _FileSet:
        return self._plant(plant)[0]

    def _plant(self, plant: Plant) -> tuple[_FileSet, str]:
        if plant.name not in self._plant_files:
            self._plant_files[plant.name] = (self._new_fileset(plant), self._overlay_hash(plant))
        return self._plant_files[plant.name]

    def _new_fileset(self, plant: Plant) -> _FileSet:
        overlay_files: dict[str, tuple[bytes, str]] = {}
        for overlay in self.project.overlays_for(plant):
            overlay_files.update({p: (d, overlay.display(p)) for p, d in overlay.files.items()})
        key = sha256_json(sorted((p, display, _digest(d)) for p, (d, display) in overlay_files.items()))
        if key not in self._filesets:
            self._filesets[key] = _FileSet(self.release, overlay_files, self._shared)
        return self._filesets[key]

    def _context(self, plant: Plant, layer: LayerConfig) -> dict[str, Any]:
        """What the layer's templates see; kept for the plant at hand, whose steps and files both need it."""
        if self._contexts[0] != plant.name:
            self._contexts = (plant.name, {})
        known = self._contexts[1]
        if layer.name not in known:
            known[layer.name] = self._new_context(plant, layer)
        return known[layer.name]

    def _new_context(self, plant: Plant, layer: LayerConfig) -> dict[str, Any]:
        inventory = plant.inventory
        return {
            "values": self.values(plant).values,  # never changed: every template renders from its own copy
            "plant": {
                "name": plant.name,
                "archetype": plant.config.archetype,
                "timezone": plant.config.timezone,
                "tags": list(plant.config.tags),
            },
            "release": {
                "id": self.release.id,
                "commit": self.release.commit,
                "content_hash": self.release.content_hash,
            },
            "layer": {"name": layer.name, "target": layer.target, "group": layer.inventory_group},
            "hosts": [h.template_view() for h in inventory.group_hosts(layer.inventory_group)],
            "groups": {g: [h.template_view() for h in inventory.group_hosts(g)] for g in inventory.groups},
        }


@functools.cache
def _string_env() -> jinja2.Environment:
    """Checks and steps in rollout.yaml are small templates too, rendered sandboxed."""
    return _environment(True, jinja2.DictLoader({}))


def _is_port(text: str) -> bool:
    return text.isascii() and text.isdigit() and 1 <= int(text) <= 65535  # int('²') fails, though '²'.isdigit()


@functools.lru_cache(maxsize=4096)
def _compiled(text: str) -> jinja2.Template:
    """Each check string is compiled once, however many plants and hosts render it."""
    return _string_env().from_string(text)


def _templated(layer: LayerConfig, index: int) -> list[tuple[str, dict[str, str], str]]:
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


def _parse_location(location: str) -> tuple[str | int, ...]:
    parts: list[str | int] = []
    for piece in location.replace("[", ".").replace("]", "").split("."):
        parts.append(int(piece) if piece.isdigit() else piece)
    return tuple(parts)


def _unique_problems(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


def _inputs(
    release: Release,
    layer: LayerConfig,
    context: dict[str, Any],
    names: frozenset[str],
    keys: frozenset[str] | None,
    overlay_files: dict[str, str],
) -> dict[str, Any]:
    read = {name: context[name] for name in sorted(names)}
    if "values" in read and keys is not None:
        read["values"] = {k: read["values"][k] for k in sorted(keys) if k in read["values"]}
        read["values_missing"] = sorted(k for k in keys if k not in context["values"])
    return {
        "renderer": RENDERER_VERSION,
        "content_hash": release.content_hash,
        "layer": {"name": layer.name, "source": layer.source_dir},
        "context": read,
        "overlay_files": overlay_files,
    }


def _render_files(
    files: _FileSet, layer: LayerConfig, paths: list[str], context: dict[str, Any]
) -> tuple[BundleFile, ...]:
    prefix_len = 0 if layer.source_dir == "." else len(layer.source_dir.rstrip("/")) + 1
    out: dict[str, BundleFile] = {}
    origin: dict[str, str] = {}
    for path in paths:
        rel = path[prefix_len:]
        name = rel.rsplit("/", 1)[-1]
        source = files.sources[path]
        if path.endswith(TEMPLATE_SUFFIX):
            if name.startswith("_"):
                continue  # a partial, only ever included
            rel = rel[: -len(TEMPLATE_SUFFIX)]
            names, _ = files.reads([path])
            # Its own copy of what it reads (with its includes): what one template changes, no other sees.
            content = files.render(path, plain_copy({k: v for k, v in context.items() if k in names}))
        else:
            content = source.content
        if rel in out:
            raise RenderError(
                [
                    Problem(
                        source.display,
                        message=f"renders to {rel!r}, as {origin[rel]} already does",
                        expected="one source file per bundle path",
                    )
                ]
            )
        out[rel] = BundleFile(rel, content, source.mode)
        origin[rel] = source.display
    # A template's name loses .j2 (``.j2`` alone names nothing; ``café.j2`` may meet ``café`` in NFD).
    problems = name_problems(origin, f"rendered names in the bundle of layer {layer.name!r}")
    if problems:
        raise RenderError(problems)
    return tuple(sorted(out.values(), key=operator.attrgetter("path")))
