"""The code base at a release with one plant's overlay files laid over it: its sources, what its
templates read (the key of a shared rendering), and the files of one layer's bundle rendered from it."""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import jinja2
import jinja2.meta
import jinja2.nodes

from rollout.config.codebase import Release
from rollout.config.filenames import clash_problems, name_problems
from rollout.config.models import LayerConfig
from rollout.config.secrets import Vault, vaulted_in
from rollout.core.bundle import BundleFile
from rollout.core.sandbox import MemoryBytecodeCache, bounded, environment, template_problem
from rollout.core.values import plain_copy
from rollout.errors import Problem, RenderError

TEMPLATE_SUFFIX = ".j2"
_CONTEXT_NAMES = ("values", "plant", "release", "layer", "hosts", "groups")


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of ``data`` in hex: how file contents are named in keys and hashes."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class _Source:
    content: bytes
    mode: int
    display: str
    from_overlay: bool


@dataclass
class Shared:
    """What every plant's file set of one Renderer shares: compiled code and template analyses."""

    trusted_code: MemoryBytecodeCache = field(default_factory=MemoryBytecodeCache)
    sandboxed_code: MemoryBytecodeCache = field(default_factory=MemoryBytecodeCache)
    analysis: dict[str, tuple[set[str], set[str] | None, list[str | None]]] = field(default_factory=dict)


class FileSet:
    """The code base at a release with one plant's overlay files laid over it."""

    def __init__(self, release: Release, overlay_files: dict[str, tuple[bytes, str]], shared: Shared) -> None:
        self.sources: dict[str, _Source] = {
            path: _Source(data, release.modes[path], release.display(path), False)
            for path, data in release.files.items()
        }
        for path, (data, display) in overlay_files.items():
            mode = release.modes.get(path, 0o644)
            self.sources[path] = _Source(data, mode, display, True)
        self.sandboxed = any(s.from_overlay and path.endswith(TEMPLATE_SUFFIX) for path, s in self.sources.items())
        bytecode = shared.sandboxed_code if self.sandboxed else shared.trusted_code
        self.env = environment(self.sandboxed, jinja2.FunctionLoader(self._load), bytecode)
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
        digest = sha256_hex(source.content)
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
            return bounded(template.generate(context), source.display)
        except RenderError:
            raise
        except Exception as exc:  # template code can raise anything; each is bad input
            raise RenderError([template_problem(exc, source.display, self._displays())]) from None

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


def _rendered(files: FileSet, path: str, context: dict[str, Any], vault: Vault | None) -> tuple[bytes, bool]:
    """The template rendered, and whether it may hold a secret (it is then mode 0600): it reads a
    value key that holds one (however it transforms it), or its text holds one as it is."""
    names, keys = files.reads([path])
    # Its own copy of what it reads (with its includes): what one template changes, no other sees.
    copied: dict[str, Any] = plain_copy({k: v for k, v in context.items() if k in names})
    if vault is None:
        return files.render(path, copied), False
    plains = [vault.decrypt(v) for v in vaulted_in(copied)]
    content = files.render(path, vault.reveal(copied))  # the plain texts live only in that copy
    values = copied.get("values", {})
    read = values if keys is None else {k: values[k] for k in keys if k in values}
    text = content.decode("utf-8", "replace")
    return content, bool(vaulted_in(read)) or any(plain and plain in text for plain in plains)


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


def render_files(
    files: FileSet, layer: LayerConfig, paths: list[str], context: dict[str, Any], vault: Vault | None = None
) -> tuple[BundleFile, ...]:
    """The files of the bundle of ``layer``: templates rendered with ``context``, others as they are.

    With a ``vault`` (the context holds encrypted values), templates see the plain texts, and a
    rendered file that holds one is mode 0600: only its owner on the host may read it.
    """
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
            content, secret = _rendered(files, path, context, vault)
        else:
            content, secret = source.content, False
        mode = 0o600 if secret else source.mode
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
        out[rel] = BundleFile(rel, content, mode)
        origin[rel] = source.display
    # A template's name loses .j2 (``.j2`` alone names nothing; ``café.j2`` may meet ``café`` in NFD).
    problems = name_problems(origin, f"rendered names in the bundle of layer {layer.name!r}")
    if problems:
        raise RenderError(problems)
    return tuple(sorted(out.values(), key=operator.attrgetter("path")))
