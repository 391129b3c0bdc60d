"""Malformed and hostile projects: each exits 2, names file and place, writes nothing.

Every case starts from the valid mini project (a real git repository), changes one
thing, commits it as release v1, and runs ``rollout validate`` and ``rollout render``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from ansible.parsing.vault import VaultLib, VaultSecret

from conftest import MiniProject, make_mini

Mutation = Callable[[MiniProject], None]


@dataclass(frozen=True)
class Case:
    id: str
    mutate: Mutation
    file: str
    """Must appear in the message: the file at fault."""
    place: str
    """Must appear in the message: key path, line or the offending name."""
    password: str | None = None
    """A vault password, written to ``vault_file``."""
    vault_file: str | None = None
    """What ``$ROLLOUT_VAULT_PASSWORD_FILE`` names, in the test's folder (with a password: ``vault.pass``)."""


def edit(rel: str, old: str, new: str) -> Mutation:
    def mutate(p: MiniProject) -> None:
        path = p.root / rel
        text = path.read_text()
        assert old in text, f"case setup: {old!r} not in {rel}"
        path.write_text(text.replace(old, new, 1))

    return mutate


def write(rel: str, text: str) -> Mutation:
    return lambda p: p.write(rel, text)


def both(*mutations: Mutation) -> Mutation:
    def mutate(p: MiniProject) -> None:
        for m in mutations:
            m(p)

    return mutate


def symlink(rel: str, target: str) -> Mutation:
    def mutate(p: MiniProject) -> None:
        link = p.root / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.exists() or link.is_symlink():
            p.remove(rel)
        os.symlink(target, link)

    return mutate


def notify(*hooks: str) -> Mutation:
    """``rollout.yaml`` with these webhooks (YAML flow mappings) under ``notify:``."""
    return edit("rollout.yaml", "name: mini\n", "name: mini\nnotify:\n" + "".join(f"  - {h}\n" for h in hooks))


def remove(rel: str) -> Mutation:
    return lambda p: p.remove(rel)


def raw(rel: str, data: bytes) -> Mutation:
    def mutate(p: MiniProject) -> None:
        (p.root / rel).write_bytes(data)

    return mutate


CHECK_URL = 'url: "http://{{ host.address }}:{{ values.port }}/health"'
VAULT_PASSWORD = "the vault password"


def vault_token(text: str) -> Mutation:
    """p1's overlay with ``sensors.token`` set to ``text`` (a ``!vault`` value, or not quite)."""
    return write("overlays/p1/values.yaml", "port: 9000\nsensors:\n  token: " + text)


def vaulted(plain: str) -> str:
    ciphertext = VaultLib([("default", VaultSecret(VAULT_PASSWORD.encode()))]).encrypt(plain).decode()
    return "!vault |\n" + "".join(f"    {line}\n" for line in ciphertext.splitlines())


OVERLAY_TEMPLATE = "overlays/p1/files/edge/config.yaml.j2"
BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(8)
)

CASES = [
    # rollout.yaml: syntax, structure, unknown keys, types
    Case(
        "yaml-syntax", edit("rollout.yaml", "name: mini", "name: [mini"), "rollout.yaml", "rollout.yaml:2: invalid YAML"
    ),
    Case("yaml-empty", write("rollout.yaml", ""), "rollout.yaml", "file is empty"),
    Case(
        "known-hosts-of-no-user",
        edit("rollout.yaml", "name: mini\n", "name: mini\nssh: {known_hosts: '~no-such-user-here/kh'}\n"),
        "rollout.yaml",
        "ssh.known_hosts",
    ),
    Case("yaml-top-list", write("rollout.yaml", "- a\n- b\n"), "rollout.yaml", "wrong top level"),
    Case("yaml-two-docs", write("rollout.yaml", "name: a\n---\nname: b\n"), "rollout.yaml", ":3"),
    Case(
        "yaml-duplicate-key", edit("rollout.yaml", "name: mini", "name: mini\nname: other"), "rollout.yaml", ":2: name"
    ),
    Case("yaml-alias-bomb", write("rollout.yaml", BOMB), "rollout.yaml", "document too large"),
    Case("yaml-not-utf8", raw("rollout.yaml", b"name: \xff\xfe\n"), "rollout.yaml", "not UTF-8"),
    Case("unknown-top-key", edit("rollout.yaml", "name: mini", "nmae: mini"), "rollout.yaml", "did you mean 'name'"),
    Case(
        "unknown-layer-key",
        edit("rollout.yaml", "target: /opt/mini/edge", "taget: /opt/mini/edge"),
        "rollout.yaml",
        "layers[0].taget",
    ),
    Case("wrong-version", edit("rollout.yaml", "name: mini", "name: mini\nversion: 2"), "rollout.yaml", "version"),
    Case("layers-not-list", edit("rollout.yaml", "layers:", "layers: edge\nold_layers:"), "rollout.yaml", "layers"),
    Case(
        "relative-target", edit("rollout.yaml", "/opt/mini/edge", "opt/mini/edge"), "rollout.yaml", "layers[0].target"
    ),
    Case("duplicate-layer", edit("rollout.yaml", "- name: ingest", "- name: edge"), "rollout.yaml", "appears twice"),
    Case(
        "check-timeout-word",
        edit("rollout.yaml", "type: command", "type: command\n        timeout: soon"),
        "rollout.yaml",
        "checks[0].timeout",
    ),
    Case(
        "check-timeout-huge",
        edit("rollout.yaml", "type: command", "type: command\n        timeout: 9999h"),
        "rollout.yaml",
        "checks[0].timeout",
    ),
    Case(
        "check-retries-negative",
        edit("rollout.yaml", "type: command", "type: command\n        retries: -1"),
        "rollout.yaml",
        "checks[0].retries",
    ),
    Case(
        "check-unknown-type", edit("rollout.yaml", "type: command", "type: ping"), "rollout.yaml", "layers[0].checks[0]"
    ),
    Case(
        "http-check-no-url",
        edit("rollout.yaml", CHECK_URL, "expect_status: 200"),
        "rollout.yaml",
        "missing required key 'url'",
    ),
    Case(
        "http-check-bad-regex",
        edit("rollout.yaml", CHECK_URL, CHECK_URL + "\n        body_regex: '('"),
        "rollout.yaml",
        "body_regex",
    ),
    Case(
        "http-status-range",
        edit("rollout.yaml", CHECK_URL, CHECK_URL + "\n        expect_status: 999"),
        "rollout.yaml",
        "expect_status",
    ),
    # strategy
    Case("threshold-over-100", edit("rollout.yaml", '"50%"', '"150%"'), "rollout.yaml", "waves[1].max_failures"),
    Case(
        "failure-response",
        edit("rollout.yaml", "parallelism: 2", "parallelism: 2\n  on_failure: explode"),
        "rollout.yaml",
        "strategy.on_failure",
    ),
    Case(
        "starts-per-minute-zero",
        edit("rollout.yaml", "parallelism: 2", "parallelism: 2\n  max_starts_per_minute: 0"),
        "rollout.yaml",
        "strategy.max_starts_per_minute",
    ),
    Case(
        "abort-criteria-percent",
        edit("rollout.yaml", "parallelism: 2", "parallelism: 2\n  abort_when: {failed_above: 'lots', min_finished: 5}"),
        "rollout.yaml",
        "strategy.abort_when.failed_above",
    ),
    Case(
        "abort-criteria-over-100",
        edit("rollout.yaml", "parallelism: 2", "parallelism: 2\n  abort_when: {failed_above: 120%}"),
        "rollout.yaml",
        "strategy.abort_when.failed_above",
    ),
    Case(
        "parallelism-zero",
        edit("rollout.yaml", "parallelism: 2", "parallelism: 0"),
        "rollout.yaml",
        "strategy.parallelism",
    ),
    Case("empty-selector", edit("rollout.yaml", "{plants: [p1]}", "{}"), "rollout.yaml", "waves[0].select"),
    Case(
        "overlapping-waves",
        edit("rollout.yaml", "{remaining: true}", "{plants: [p1, p2, p3]}"),
        "rollout.yaml",
        "already in wave 'canary'",
    ),
    Case("plant-in-no-wave", edit("rollout.yaml", "{remaining: true}", "{plants: [p2]}"), "rollout.yaml", "p3"),
    Case(
        "wave-unknown-plant",
        edit("rollout.yaml", "{plants: [p1]}", "{plants: [p1, p9]}"),
        "rollout.yaml",
        "no plant matches 'p9'",
    ),
    Case(
        "two-remaining-waves", edit("rollout.yaml", "{plants: [p1]}", "{remaining: true}"), "rollout.yaml", "strategy"
    ),
    Case("duplicate-wave", edit("rollout.yaml", "name: rest", "name: canary"), "rollout.yaml", "appears twice"),
    # plants
    Case("bad-timezone", edit("plants/p1.yaml", "Europe/Berlin", "Europe/Atlantis"), "plants/p1.yaml", "timezone"),
    Case("timezone-path", edit("plants/p1.yaml", "Europe/Berlin", "../../etc/passwd"), "plants/p1.yaml", "timezone"),
    Case("window-hour", edit("plants/p1.yaml", '"02:00"', '"25:00"'), "plants/p1.yaml", "windows[0].start"),
    Case("window-day", edit("plants/p1.yaml", "[sat, sun]", "[sat, funday]"), "plants/p1.yaml", "windows[0].days[1]"),
    Case("window-empty", edit("plants/p1.yaml", '"06:00"', '"02:00"'), "plants/p1.yaml", "windows[0]"),
    Case(
        "plant-unknown-key",
        edit("plants/p1.yaml", "archetype:", "archtype:"),
        "plants/p1.yaml",
        "did you mean 'archetype'",
    ),
    Case(
        "plant-archetype-list",
        edit("plants/p1.yaml", "archetype: small", "archetype: [small]"),
        "plants/p1.yaml",
        "archetype",
    ),
    Case(
        "plant-bad-name",
        write("plants/P 1.yaml", "archetype: x\ntimezone: UTC\nwindows: always\n"),
        "plants/P 1.yaml",
        "invalid plant name",
    ),
    Case("plant-duplicate-key", edit("plants/p2.yaml", "tags: [na]", "tags: [na]\ntags: [eu]"), "plants/p2.yaml", ":5"),
    Case("no-plants", remove("plants"), "plants/", "no plants defined"),
    # inventories
    Case(
        "inventory-missing-group",
        edit("inventories/p2.yml", "    ingest:\n", "    ingestion:\n"),
        "inventories/p2.yml",
        "'ingest'",
    ),
    Case(
        "inventory-host-range",
        edit("inventories/p2.yml", "p2-gw:", '"p2-gw[a-c]":'),
        "inventories/p2.yml",
        "invalid host pattern",
    ),
    Case(
        "inventory-ini",
        both(
            write("inventories/p2.ini", "[edge]\nh1 port\n"),
            edit("plants/p2.yaml", "windows: always", "windows: always\ninventory: inventories/p2.ini"),
        ),
        "inventories/p2.ini:2",
        "not a host variable",
    ),
    Case("inventory-missing-file", remove("inventories/p3.yml"), "inventories/p3.yml", "file not found"),
    Case(
        "inventory-unknown-key",
        edit("inventories/p1.yml", "      hosts:\n        p1-gw", "      host:\n        p1-gw"),
        "inventories/p1.yml",
        "did you mean 'hosts'",
    ),
    Case(
        "inventory-path-escape",
        edit("plants/p2.yaml", "windows: always", "windows: always\ninventory: ../p2.yml"),
        "plants/p2.yaml",
        "inventory",
    ),
    Case(
        "inventory-ini-undeclared-child",
        both(
            write("inventories/p2.ini", "[edge]\np2-gw\n[ingest]\np2-in\n[site:children]\nedge\nmissing\n"),
            edit("plants/p2.yaml", "windows: always", "windows: always\ninventory: inventories/p2.ini"),
        ),
        "inventories/p2.ini:7",
        "'missing', which is declared nowhere",
    ),
    Case(
        "inventory-ini-bad-header",
        both(
            write("inventories/p2.ini", "[edge servers]\np2-gw\n"),
            edit("plants/p2.yaml", "windows: always", "windows: always\ninventory: inventories/p2.ini"),
        ),
        "inventories/p2.ini:1",
        "invalid section header",
    ),
    Case(
        "inventory-group-cycle",
        edit("inventories/p2.yml", "    ingest:\n", "    ingest:\n      children:\n        ingest:\n"),
        "inventories/p2.yml",
        "groups contain each other: ingest -> ingest",
    ),
    Case(
        "inventory-plugin-config", write("inventories/p2.yml", "plugin: constructed\n"), "inventories/p2.yml", "plugin"
    ),
    Case(
        "inventory-group-vars-broken",
        write("inventories/group_vars/edge.yml", "port: [\n"),
        "inventories/group_vars/edge.yml:2",
        "invalid YAML",
    ),
    Case(
        "inventory-host-vars-list",
        write("inventories/host_vars/p1-gw.yml", "- a\n"),
        "inventories/host_vars/p1-gw.yml",
        "not a mapping of variables",
    ),
    Case(
        "inventory-host-name-dotdot",
        edit("inventories/p2.yml", "p2-gw:", '"..":'),
        "inventories/p2.yml",
        "host '..': invalid host name",
    ),
    # overlays
    Case("overlay-unknown-plant", write("overlays/p9/values.yaml", "port: 1\n"), "overlays/p9", "plant 'p9'"),
    Case(
        "overlay-unknown-archetype",
        write("overlays/_archetypes/huge/values.yaml", "port: 1\n"),
        "overlays/_archetypes/huge",
        "archetype 'huge'",
    ),
    Case(
        "overlay-replace-not-allowed",
        write("overlays/p1/files/ingest/app.conf.j2", "x\n"),
        "overlays/p1/files/ingest/app.conf.j2",
        "may not replace",
    ),
    Case(
        "overlay-add-not-allowed",
        write("overlays/p1/files/edge/new.txt", "x\n"),
        "overlays/p1/files/edge/new.txt",
        "may not add",
    ),
    Case(
        "overlay-outside-layers",
        write("overlays/p1/files/docs/x.txt", "x\n"),
        "overlays/p1/files/docs/x.txt",
        "not inside any layer",
    ),
    Case(
        "overlay-replace-values",
        write("overlays/p1/files/values.yaml", "port: 1\n"),
        "overlays/p1/files/values.yaml",
        "cannot be replaced",
    ),
    Case(
        "overlay-symlink-out",
        symlink("overlays/p1/files/edge/extra/passwd", "/etc/passwd"),
        "overlays/p1/files/edge/extra/passwd",
        "symlink",
    ),
    Case("overlay-folder-symlink", symlink("overlays/p2", "/etc"), "overlays/p2", "symlink"),
    Case(
        "overlay-dir-symlink",
        symlink("overlays/p1/files/edge/extra", "/etc"),
        "overlays/p1/files/edge/extra",
        "symlink",
    ),
    Case(
        "overlay-values-symlink",
        symlink("overlays/p1/values.yaml", "/etc/hostname"),
        "overlays/p1/values.yaml",
        "symlink",
    ),
    Case("overlay-stray-entry", write("overlays/p1/secrets.txt", "x\n"), "overlays/p1/secrets.txt", "unexpected entry"),
    Case(
        "overlay-unknown-value",
        write("overlays/p1/values.yaml", "prot: 9000\n"),
        "overlays/p1/values.yaml",
        "did you mean 'port'",
    ),
    Case("overlay-value-kind", write("overlays/p1/values.yaml", "kpi: 0.9\n"), "overlays/p1/values.yaml", ":1: kpi"),
    Case(
        "overlay-values-list",
        write("overlays/p1/values.yaml", "- port\n"),
        "overlays/p1/values.yaml",
        "wrong top level",
    ),
    Case("policy-dotdot", edit("rollout.yaml", '["edge/extra/*"]', '["../*"]'), "rollout.yaml", "overlays.may_add[0]"),
    Case(
        "policy-absolute",
        edit("rollout.yaml", '["edge/*.j2"]', '["/etc/*"]'),
        "rollout.yaml",
        "overlays.may_replace[0]",
    ),
    Case("codebase-absolute", edit("rollout.yaml", "path: app", "path: /etc"), "rollout.yaml", "codebase.path"),
    # playbooks
    Case(
        "playbook-dotdot",
        edit("rollout.yaml", "target: /opt/mini/edge", "target: /opt/mini/edge\n    activation: {playbook: ../x.yml}"),
        "rollout.yaml",
        "activation.playbook",
    ),
    Case(
        "playbook-missing",
        edit(
            "rollout.yaml",
            "target: /opt/mini/edge",
            "target: /opt/mini/edge\n    activation: {playbook: playbooks/nope.yml}",
        ),
        "rollout.yaml",
        "does not exist",
    ),
    Case(
        "playbook-outside",
        both(
            write("other/x.yml", "- hosts: all\n"),
            edit(
                "rollout.yaml",
                "target: /opt/mini/edge",
                "target: /opt/mini/edge\n    activation: {playbook: other/x.yml}",
            ),
        ),
        "rollout.yaml",
        "outside playbooks/",
    ),
    Case(
        "playbook-not-plays",
        both(
            write("playbooks/x.yml", "hosts: all\n"),
            edit(
                "rollout.yaml",
                "target: /opt/mini/edge",
                "target: /opt/mini/edge\n    activation: {playbook: playbooks/x.yml}",
            ),
        ),
        "playbooks/x.yml",
        "list of plays",
    ),
    # templates
    Case(
        "template-undefined",
        write("app/edge/config.yaml.j2", "a: 1\nport: {{ values.missing }}\n"),
        "app/edge/config.yaml.j2@v1:2",
        "missing",
    ),
    Case("template-syntax", write("app/edge/config.yaml.j2", "{% if %}\n"), "app/edge/config.yaml.j2@v1:1", "syntax"),
    Case(
        "overlay-template-undefined",
        write(OVERLAY_TEMPLATE, "x: {{ nothing_here }}\n"),
        OVERLAY_TEMPLATE + ":1",
        "nothing_here",
    ),
    Case(
        "overlay-template-mro",
        write(OVERLAY_TEMPLATE, "{{ ''.__class__.__mro__[1].__subclasses__() }}\n"),
        OVERLAY_TEMPLATE + ":1",
        "sandbox",
    ),
    Case(
        "overlay-template-globals",
        write(OVERLAY_TEMPLATE, "a: 1\n{{ cycler.__init__.__globals__.os.system('id') }}\n"),
        OVERLAY_TEMPLATE + ":2",
        "sandbox",
    ),
    Case(
        "overlay-template-mutate",
        write(OVERLAY_TEMPLATE, "{{ values.sensors.update({'a': 1}) }}\n"),
        OVERLAY_TEMPLATE + ":1",
        "sandbox",
    ),
    Case(
        "overlay-template-include-file",
        write(OVERLAY_TEMPLATE, "{% include '../../../../etc/passwd' %}\n"),
        OVERLAY_TEMPLATE,
        "not a template of the code base",
    ),
    Case(
        "overlay-template-huge",
        write(OVERLAY_TEMPLATE, "{{ 'x' * 100000000 }}\n"),
        OVERLAY_TEMPLATE + ":1",
        "too large",
    ),
    Case(
        "check-url-undefined",
        edit("rollout.yaml", "{{ values.port }}/health", "{{ values.nope }}/health"),
        "rollout.yaml",
        "layers[1].checks[0].url",
    ),
    Case(
        "tcp-port-renders-bad",
        edit("rollout.yaml", 'port: "{{ values.port }}"', 'port: "{{ values.port }}x"'),
        "rollout.yaml",
        "layers[1].checks[1].port",
    ),
    # connections and preflight
    Case(
        "ssh-timeout-word",
        edit("rollout.yaml", "name: mini", "name: mini\nssh: {connect_timeout: forever}"),
        "rollout.yaml",
        "ssh.connect_timeout",
    ),
    Case(
        "preflight-negative",
        edit("rollout.yaml", "name: mini", "name: mini\npreflight: {min_free_mb: -1}"),
        "rollout.yaml",
        "preflight.min_free_mb",
    ),
    Case(
        "unknown-connection",
        edit("inventories/p2.yml", "ansible_connection: local", "ansible_connection: winrm"),
        "inventories/p2.yml",
        "p2-gw: winrm",
    ),
    Case(
        "stop-step-unknown-key",
        edit("rollout.yaml", "    restart:", "    stop: {cmd: x}\n    restart:"),
        "rollout.yaml",
        "layers[1].stop",
    ),
    # notifications
    Case("notify-url-scheme", notify("{name: ops, url: 'ftp://hooks.example/x'}"), "rollout.yaml", "notify[0].url"),
    Case("notify-url-no-host", notify("{name: ops, url: 'https:///x'}"), "rollout.yaml", "notify[0].url"),
    Case(
        "notify-duplicate-name",
        notify("{name: ops, url: 'https://a.example/'}", "{name: ops, url: 'https://b.example/'}"),
        "rollout.yaml",
        "webhook names to be unique; 'ops' appears twice",
    ),
    Case(
        "notify-unknown-event",
        notify("{name: ops, url: 'https://a.example/', events: [finished, exploded]}"),
        "rollout.yaml",
        "notify[0].events[1]",
    ),
    Case(
        "notify-no-events",
        notify("{name: ops, url: 'https://a.example/', events: []}"),
        "rollout.yaml",
        "notify[0].events",
    ),
    Case(
        "notify-format",
        notify("{name: ops, url: 'https://a.example/', format: email}"),
        "rollout.yaml",
        "notify[0].format",
    ),
    Case(
        "notify-timeout-huge",
        notify("{name: ops, url: 'https://a.example/', timeout: 2h}"),
        "rollout.yaml",
        "notify[0].timeout",
    ),
    Case(
        "notify-header-line-break",
        notify("{name: ops, url: 'https://a.example/', headers: {X-Key: \"k\\r\\nHost: evil\"}}"),
        "rollout.yaml",
        "notify[0].headers",
    ),
    Case(
        "notify-header-name",
        notify("{name: ops, url: 'https://a.example/', headers: {'X Key': v}}"),
        "rollout.yaml",
        "header names of letters",
    ),
    Case(
        "notify-unknown-key",
        notify("{name: ops, url: 'https://a.example/', event: [finished]}"),
        "rollout.yaml",
        "did you mean 'events'",
    ),
    Case(
        "notify-not-list",
        edit("rollout.yaml", "name: mini\n", "name: mini\nnotify: https://a.example/\n"),
        "rollout.yaml",
        "notify",
    ),
    # code base and release
    Case(
        "unknown-ref",
        edit("rollout.yaml", "ref: v1", "ref: v99"),
        "rollout.yaml:5: codebase.ref",
        "unknown release ref 'v99'",
    ),
    Case(
        "option-like-ref",
        edit("rollout.yaml", "ref: v1", "ref: --upload-pack=touch"),
        "rollout.yaml",
        "invalid release ref",
    ),
    Case(
        "codebase-folder-missing",
        edit("rollout.yaml", "path: app", "path: application"),
        "rollout.yaml:4: codebase.path",
        "'application' does not exist",
    ),
    Case(
        "codebase-not-git",
        edit("rollout.yaml", "repo: .", "repo: /"),
        "rollout.yaml:3: codebase.repo",
        "not in a git repository",
    ),
    Case("codebase-symlink", symlink("app/edge/link", "/etc/passwd"), "app/edge/link@v1", "symlink"),
    Case("base-values-missing", remove("app/values.yaml"), "app/values.yaml@v1", "does not exist"),
    Case("base-values-broken", write("app/values.yaml", "port: [\n"), "app/values.yaml@v1", ":2"),
    Case("layer-folder-missing", remove("app/ingest"), "app/ingest@v1", "no files"),
    Case("empty-project", remove("rollout.yaml"), "mini", "no rollout.yaml"),
    # file names: refused in overlays, in the code base and as rendered; named escaped
    Case(
        "overlay-name-newline",
        write("overlays/p1/files/edge/extra/new\nline.txt", "x\n"),
        "overlays/p1/files/edge/extra/new\\nline.txt",
        "U+000A, a control character (overlay overlays/p1)",
    ),
    Case(
        "overlay-name-escape",
        write("overlays/p1/files/edge/extra/\x1b[31mred.txt", "x\n"),
        "overlays/p1/files/edge/extra/\\x1b[31mred.txt",
        "U+001B",
    ),
    Case(
        "overlay-name-bidi-override",
        write("overlays/p1/files/edge/extra/invoice\u202etxt.exe", "x\n"),
        "overlays/p1/files/edge/extra/invoice\\u202etxt.exe",
        "U+202E",
    ),
    Case(
        "archetype-name-bidi-isolate",
        write("overlays/_archetypes/small/files/edge/extra/\u2067x.txt", "x\n"),
        "overlays/_archetypes/small/files/edge/extra/\\u2067x.txt",
        "overlay overlays/_archetypes/small",
    ),
    Case(
        "overlay-name-zero-width-joiner",
        write("overlays/p1/files/edge/extra/a\u200db.txt", "x\n"),
        "overlays/p1/files/edge/extra/a\\u200db.txt",
        "U+200D, an invisible format character",
    ),
    Case(
        "overlay-folder-name-mark",
        write("overlays/p1/files/edge/extra/sub\u200e/x.txt", "x\n"),
        "overlays/p1/files/edge/extra/sub\\u200e",
        "U+200E",
    ),
    Case(
        "overlay-names-nfc-nfd",
        both(
            write("overlays/p1/files/edge/extra/caf\u00e9.json", "1\n"),
            write("overlays/p1/files/edge/extra/cafe\u0301.json", "2\n"),
        ),
        "overlays/p1/files/edge/extra/caf\u00e9.json",
        "'edge/extra/caf\\xe9.json' and 'edge/extra/cafe\\u0301.json'",
    ),
    Case(
        "codebase-name-newline",
        write("app/edge/new\nline.txt", "x\n"),
        "app/edge/new\\nline.txt@v1",
        "U+000A, a control character (code base at release v1)",
    ),
    Case("codebase-name-bidi", write("app/ingest/run\u202e.sh", "x\n"), "app/ingest/run\\u202e.sh@v1", "U+202E"),
    Case("codebase-name-arabic-mark", write("app/edge/x\u061c.txt", "x\n"), "app/edge/x\\u061c.txt@v1", "U+061C"),
    Case("codebase-folder-name-control", write("app/edge/sub\x01/x.txt", "x\n"), "app/edge/sub\\x01@v1", "U+0001"),
    Case(
        "codebase-names-nfc-nfd",
        both(write("app/edge/caf\u00e9.json", "1\n"), write("app/edge/cafe\u0301.json", "2\n")),
        "app/edge/caf\u00e9.json@v1",
        "differ only in Unicode normalisation (code base at release v1)",
    ),
    Case(
        "codebase-and-overlay-nfc-nfd",
        both(
            write("app/edge/extra/caf\u00e9.json", "1\n"), write("overlays/p1/files/edge/extra/cafe\u0301.json", "2\n")
        ),
        "app/edge/extra/caf\u00e9.json@v1",
        "(overlays/p1/files/edge/extra/cafe\u0301.json) differ only in Unicode normalisation",
    ),
    Case(
        "rendered-names-nfc-nfd",
        both(write("app/edge/caf\u00e9.json.j2", "1\n"), write("app/edge/cafe\u0301.json", "2\n")),
        "app/edge/caf\u00e9.json.j2@v1",
        "rendered names in the bundle of layer 'edge'",
    ),
    Case("template-renders-to-no-name", write("app/edge/.j2", "x\n"), "app/edge/.j2@v1", "empty component"),
    Case("vault-without-password", vault_token(vaulted("s3cret")), "overlays/p1/values.yaml:3", "sensors.token"),
    Case(
        "vault-wrong-password",
        vault_token(vaulted("s3cret")),
        "overlays/p1/values.yaml:3",
        "sensors.token: cannot decrypt",
        password="not the vault password",
    ),
    Case(
        "vault-password-file-missing",
        vault_token(vaulted("s3cret")),
        "overlays/p1/values.yaml:3",
        "sensors.token: vault password file",
        vault_file="absent.pass",
    ),
    Case(
        "vault-password-file-unreadable",
        vault_token(vaulted("s3cret")),
        "overlays/p1/values.yaml:3",
        "sensors.token: cannot read vault password file",
        vault_file=".",
    ),
    Case(
        "vault-password-empty",
        vault_token(vaulted("s3cret")),
        "overlays/p1/values.yaml:3",
        "is empty or too large",
        password="",
    ),
    Case("vault-not-ciphertext", vault_token("!vault hunter2\n"), "overlays/p1/values.yaml:3", "invalid !vault"),
    Case("vault-on-a-mapping", vault_token("!vault {a: 1}\n"), "overlays/p1/values.yaml:3", "sensors.token"),
    Case(
        "vault-in-a-check",
        both(
            vault_token(vaulted("s3cret")),
            edit("rollout.yaml", "{{ values.port }}/health", "{{ values.sensors.token }}"),
        ),
        "rollout.yaml",
        "sensors.token (overlays/p1/values.yaml) is encrypted",
        password=VAULT_PASSWORD,
    ),
]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_mini(tmp_path_factory.mktemp("pristine") / "mini").root


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


def test_pristine_project_is_valid(pristine: Path, rollout) -> None:
    result = rollout("validate", "-C", pristine)
    assert result.code == 0, result.text


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, pristine: Path, tmp_path: Path, rollout, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    monkeypatch.delenv("ROLLOUT_VAULT_PASSWORD_FILE", raising=False)
    if case.password is not None:
        (tmp_path / "vault.pass").write_text(case.password + "\n")
    vault_file = case.vault_file or ("vault.pass" if case.password is not None else None)
    if vault_file is not None:
        monkeypatch.setenv("ROLLOUT_VAULT_PASSWORD_FILE", str(tmp_path / vault_file))

    root = tmp_path / "mini"
    shutil.copytree(pristine, root, symlinks=True)
    project = MiniProject(root)
    case.mutate(project)
    project.commit("v1")

    result = rollout("validate", "-C", root)
    assert result.code == 2, result.text
    assert "Traceback" not in result.text and "internal error" not in result.text
    assert case.file in result.err, result.err
    assert case.place in result.err, result.err

    out = tmp_path / "bundles"
    rendered = rollout("render", "-C", root, "--out", out)
    assert rendered.code in (0, 2) and "Traceback" not in rendered.text
    if rendered.code == 2:
        assert not out.exists(), "a failed render wrote bundles"

    as_json = rollout("validate", "-C", root, "--json")
    assert as_json.code == 2
    import json

    errors = [json.loads(line) for line in as_json.out.splitlines()]
    assert errors and all(e["type"] == "error" and e["file"] for e in errors)
