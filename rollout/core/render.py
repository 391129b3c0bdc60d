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

The Renderer is here; its parts are ``sandbox`` (the environments templates render in),
``fileset`` (a plant's sources and what its templates read) and ``step_templates`` (checks
and command steps of rollout.yaml).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from rollout.config.codebase import Release
from rollout.config.models import LayerConfig
from rollout.config.overlays import policy_problems
from rollout.config.project import Plant, Project
from rollout.config.secrets import Vaulted, vaulted_in
from rollout.config.yamlfile import YamlDoc, parse_yaml
from rollout.core.bundle import Bundle, BundleFile, sha256_json
from rollout.core.fileset import TEMPLATE_SUFFIX, FileSet, Shared, render_files, sha256_hex
from rollout.core.step_templates import parse_location, render_fields, templated, unique_problems
from rollout.core.values import MergedValues, merge_values
from rollout.errors import ConfigError, Problem, RenderError

RENDERER_VERSION = 1

Reuse = Callable[[Bundle], tuple[BundleFile, ...] | None]
"""Given a bundle without its files (release, plant, overlay and inputs hashes set), the files
of that same bundle rendered before, or None to render them now."""


class Renderer:
    """Renders every plant and layer of a project at one release."""

    def __init__(self, project: Project, release: Release) -> None:
        self.project = project
        self.release = release
        self.base_values = self._base_values()
        self._filesets: dict[str, FileSet] = {}
        self._shared = Shared()
        self._memo: dict[str, tuple[BundleFile, ...]] = {}
        self._values: dict[str, MergedValues] = {}
        self._plant_files: dict[str, tuple[FileSet, str]] = {}
        """Plant -> its file set and overlay hash, worked out once however often asked for."""
        self._contexts: tuple[str, dict[str, dict[str, Any]]] = ("", {})
        """The plant at hand and its context per layer."""
        self.hits = 0
        """Renderings saved because another plant had equal inputs."""
        vaulted = self._vaulted()
        self._secrets = bool(vaulted)
        """Whether any values file holds an encrypted value: without, no plant's values are searched for one."""
        project.vault.decrypt_quietly(vaulted)

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

    def _vaulted(self) -> list[Vaulted]:
        """Every encrypted value of the base and of every overlay."""
        self.project.need_overlays()
        overlays = [*self.project.plant_overlays.values(), *self.project.archetype_overlays.values()]
        found = vaulted_in(self.base_values.data)
        return found + [v for o in overlays if o.values is not None for v in vaulted_in(o.values.data)]

    def values(self, plant: Plant) -> MergedValues:
        """The plant's merged values with the source of each."""
        if plant.name not in self._values:
            layers = [(o.label, o.values) for o in self.project.overlays_for(plant) if o.values is not None]
            merged = merge_values(self.base_values, layers)
            if self._secrets:
                self._decrypt_all(merged)
            self._values[plant.name] = merged
        return self._values[plant.name]

    def _decrypt_all(self, merged: MergedValues) -> None:
        """Every encrypted value the plant sees must decrypt (each once): a wrong password fails here, at once."""
        problems: list[Problem] = []
        for value in vaulted_in(merged.values):
            try:
                self.project.vault.decrypt(value)
            except ConfigError as exc:
                problems += exc.problems
        if problems:
            raise ConfigError(problems)

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
                    key: render_fields(fields, context, location, problems, self._line)
                    for key, fields, location in templated(layer, i)
                }
        if problems:
            raise RenderError(unique_problems(problems))
        return out

    def _line(self, where: str) -> int | None:
        return self.project.doc.line_of(parse_location(where))  # only wanted for a problem

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
            vault = self.project.vault if self._secrets and vaulted_in(context["values"]) else None
            self._memo[inputs_hash] = known if known is not None else render_files(files, layer, paths, context, vault)
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
                    "files": {p: sha256_hex(d) for p, d in sorted(o.files.items())},
                }
                for o in overlays
            ]
        )

    def _overlay_digests(self, plant: Plant) -> dict[str, str]:
        merged: dict[str, str] = {}
        for overlay in self.project.overlays_for(plant):
            merged.update({p: sha256_hex(d) for p, d in overlay.files.items()})
        return merged

    def _fileset(self, plant: Plant) -> FileSet:
        return self._plant(plant)[0]

    def _plant(self, plant: Plant) -> tuple[FileSet, str]:
        if plant.name not in self._plant_files:
            self._plant_files[plant.name] = (self._new_fileset(plant), self._overlay_hash(plant))
        return self._plant_files[plant.name]

    def _new_fileset(self, plant: Plant) -> FileSet:
        overlay_files: dict[str, tuple[bytes, str]] = {}
        for overlay in self.project.overlays_for(plant):
            overlay_files.update({p: (d, overlay.display(p)) for p, d in overlay.files.items()})
        key = sha256_json(sorted((p, display, sha256_hex(d)) for p, (d, display) in overlay_files.items()))
        if key not in self._filesets:
            self._filesets[key] = FileSet(self.release, overlay_files, self._shared)
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
