# ruff: noqa: E501  (template lines read best unbroken)
"""Scale of the pure core: plan, render and validate for generated projects of N plants.

Generates a realistic, seeded project of N plants (3 layers, 15 code-base files, staged
waves, 3 archetypes, many time zones and tags, a few hosts per plant, archetype and
per-plant overlays, overlay files for a fraction of plants) in a temporary git
repository, then runs each command in a fresh subprocess: wall time from here; user and
system time and peak RSS from that child's rusage (``os.wait4``), which counts the workers it
forked in its times, and in its peak as the largest single process (not a sum).

    .venv/bin/python bench/scale.py [--sizes 10,100,1000,10000] [--runs N] [--keep DIR]

Medians of ``--runs`` runs (default 3; sizes of 10,000 and more use ``--big-runs``,
default 1). ``--pythonpath DIR`` runs another copy of the ``rollout`` package (a
baseline) against the same generated projects.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

SEED = 20261102
RELEASE = "2026.11.0"
BIG = 10_000
GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
    "GIT_AUTHOR_DATE": "2026-11-02T08:00:00Z",
    "GIT_COMMITTER_DATE": "2026-11-02T08:00:00Z",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
}

# -- the code base: three layers, templates with loops, conditionals, includes, partials ----

BASE_VALUES = """
site:
  lines: 2
  shift_hours: 8
  shifts: [early, late]
edge:
  protocol: opcua
  poll_interval_ms: 500
  buffer_minutes: 30
  tls: false
  sensors:
    - {id: l1-temp, line: 1, kind: temperature, address: "ns=2;s=Line1.Oven.Temp"}
    - {id: l1-vib, line: 1, kind: vibration, address: "ns=2;s=Line1.Press.Vib"}
    - {id: l1-count, line: 1, kind: count, address: "ns=2;s=Line1.Counter"}
    - {id: l2-temp, line: 2, kind: temperature, address: "ns=2;s=Line2.Oven.Temp"}
    - {id: l2-count, line: 2, kind: count, address: "ns=2;s=Line2.Counter"}
  labels: {}
ingest:
  port: 8700
  batch_size: 200
  queue_limit: 2000
  retention_hours: 72
  workers: 2
  units: {temperature: C, vibration: mm/s, pressure: bar, count: pcs}
  alerts:
    temperature_max: 90
    vibration_max: 7.1
    pressure_max: 12
dashboards:
  refresh_s: 30
  theme: light
  kpis:
    oee_target: 0.85
    availability_target: 0.90
    performance_target: 0.95
    quality_target: 0.99
    scrap_rate_max: 0.02
"""

CODEBASE: dict[str, str] = {
    "values.yaml": BASE_VALUES,
    "edge/gateway.yaml.j2": """
        # Sensor gateway configuration of {{ plant.name }}, release {{ release.id }}.
        gateway:
          plant: {{ plant.name }}
          timezone: {{ plant.timezone }}
          protocol: {{ values.edge.protocol }}
          poll_interval_ms: {{ values.edge.poll_interval_ms }}
          buffer_minutes: {{ values.edge.buffer_minutes }}
          tls: {{ values.edge.tls | to_json }}
          labels: {{ values.edge.labels | to_json }}
        gateways:
        {% for host in hosts %}
          - {name: {{ host.name }}, address: {{ host.address }}, line: {{ host.vars.line | default(1) }}}
        {% endfor %}
        flow:
          destination: "http://{{ groups.ingest[0].address }}:{{ values.ingest.port }}/readings"
          batch_size: {{ values.ingest.batch_size }}
        sensors:
        {% for sensor in values.edge.sensors | sort(attribute="id") %}
        {%   if sensor.line > values.site.lines %}{{ fail("sensor " ~ sensor.id ~ " is on a line the plant lacks") }}{% endif %}
        {%   include "edge/_sensor.yaml.j2" %}
        {% endfor %}
        """,
    "edge/_sensor.yaml.j2": """
          - id: {{ sensor.id }}
            line: {{ sensor.line }}
            kind: {{ sensor.kind }}
            unit: {{ values.ingest.units[sensor.kind] }}
            address: {{ sensor.address | to_json }}
        """,
    "edge/sensors.csv.j2": """
        id,line,kind,unit,address
        {% for s in values.edge.sensors | sort(attribute="id") -%}
        {{ s.id }},{{ s.line }},{{ s.kind }},{{ values.ingest.units[s.kind] }},{{ s.address }}
        {% endfor %}
        """,
    "edge/logging.yaml": """
        version: 1
        handlers:
          file: {class: logging.handlers.RotatingFileHandler, filename: gateway.log, maxBytes: 10485760}
        root: {level: INFO, handlers: [file]}
        """,
    "edge/gatewayctl": """
        #!/bin/sh
        # start | stop | restart the sensor gateway
        exec python3 -m gateway "$@"
        """,
    "ingest/ingest.json.j2": """
        {
          "plant": {{ plant.name | to_json }},
          "release": {{ release.id | to_json }},
          "bind": {{ hosts[0].address | to_json }},
          "port": {{ values.ingest.port }},
          "workers": {{ values.ingest.workers }},
          "batch_size": {{ values.ingest.batch_size }},
          "queue_limit": {{ values.ingest.queue_limit }},
          "retention_hours": {{ values.ingest.retention_hours }},
          "sensors": [
        {%- for sensor in values.edge.sensors | sort(attribute="id") %}
            {"id": {{ sensor.id | to_json }}, "line": {{ sensor.line }}, "unit": {{ values.ingest.units[sensor.kind] | to_json }}}{{ "," if not loop.last }}
        {%- endfor %}
          ]
        }
        """,
    "ingest/pipeline.yaml.j2": """
        stages:
        {% for line in range(1, values.site.lines + 1) %}
          - name: line-{{ line }}
            sensors: {{ values.edge.sensors | selectattr("line", "equalto", line) | map(attribute="id") | list | to_json }}
        {%   if values.ingest.batch_size > 1000 %}
            mode: bulk
        {%   else %}
            mode: stream
        {%   endif %}
        {% endfor %}
        retention_hours: {{ values.ingest.retention_hours }}
        """,
    "ingest/alerts.yaml.j2": """
        alerts:
        {% for sensor in values.edge.sensors | sort(attribute="id") %}
        {%   set limit = values.ingest.alerts.get(sensor.kind ~ "_max") %}
        {%   if limit is not none %}
          - {sensor: {{ sensor.id }}, above: {{ limit }}, unit: {{ values.ingest.units[sensor.kind] }}}
        {%   endif %}
        {% endfor %}
        """,
    "ingest/ingestctl": """
        #!/bin/sh
        # start | stop | restart the ingest service
        exec python3 -m ingest --config current/ingest.json "$@"
        """,
    "ingest/schema.sql": """
        CREATE TABLE IF NOT EXISTS readings (sensor TEXT NOT NULL, at TIMESTAMPTZ NOT NULL, value DOUBLE PRECISION);
        CREATE INDEX IF NOT EXISTS readings_at ON readings (at);
        """,
    "dashboards/_kpi_panel.json.j2": """
        {"type": "gauge", "title": {{ title | to_json }}, "line": {{ line }}, "target": {{ target }}, "query": {{ query | to_json }}}
        """,
    "dashboards/plant-overview.json.j2": """
        {
          "title": "{{ plant.name | title }} - plant overview",
          "timezone": {{ plant.timezone | to_json }},
          "refresh": "{{ values.dashboards.refresh_s }}s",
          "theme": {{ values.dashboards.theme | to_json }},
          "datasource": "http://{{ groups.ingest[0].address }}:{{ values.ingest.port }}",
          "panels": [
        {%- set kpis = values.dashboards.kpis %}
        {%- for line in range(1, values.site.lines + 1) %}
        {%-   set title = "Line " ~ line ~ " OEE" %}{% set target = kpis.oee_target %}{% set query = "oee(line=" ~ line ~ ")" %}
            {% include "dashboards/_kpi_panel.json.j2" %},
        {%-   set title = "Line " ~ line ~ " scrap" %}{% set target = kpis.scrap_rate_max %}{% set query = "scrap(line=" ~ line ~ ")" %}
            {% include "dashboards/_kpi_panel.json.j2" %}{{ "," if not loop.last }}
        {%- endfor %}
          ],
          "oee_from_parts": {{ "%.4f" | format(kpis.availability_target * kpis.performance_target * kpis.quality_target) }}
        }
        """,
    "dashboards/sensors.json.j2": """
        {
          "title": "{{ plant.name | title }} - sensors",
          "panels": [
        {%- for sensor in values.edge.sensors | sort(attribute="id") %}
            {"type": "timeseries", "title": "{{ sensor.id }} ({{ values.ingest.units[sensor.kind] }})", "query": "readings(sensor={{ sensor.id }})"}{{ "," if not loop.last }}
        {%- endfor %}
          ]
        }
        """,
    "dashboards/shift-report.json.j2": """
        {
          "title": "{{ plant.name | title }} - shift report",
          "shift_hours": {{ values.site.shift_hours }},
          "rows": [
        {%- for shift in values.site.shifts %}
        {%-   set outer = loop %}
        {%-   for line in range(1, values.site.lines + 1) %}
            {"shift": {{ shift | to_json }}, "line": {{ line }}, "oee_target": {{ values.dashboards.kpis.oee_target }}}{{ "," if not (outer.last and loop.last) }}
        {%-   endfor %}
        {%- endfor %}
          ]
        }
        """,
    "dashboards/theme.css": """
        :root { --panel-bg: #fafafa; --panel-fg: #222; }
        .dark { --panel-bg: #1e1e1e; --panel-fg: #eee; }
        """,
}
EXECUTABLES = ("edge/gatewayctl", "ingest/ingestctl")

# -- overlay files: replaced and added templates, in a few variants plants copy ------------

OVERVIEW_VARIANTS = [
    """
    {
      "title": "{{ plant.name | title }} - overview (andon)",
      "refresh": "{{ values.dashboards.refresh_s }}s",
      "panels": [
    {%- for line in range(1, values.site.lines + 1) %}
        {"type": "stat", "title": "Line {{ line }} andon calls", "query": "andon(line={{ line }})"}{{ "," if not loop.last }}
    {%- endfor %}
      ],
      "targets": {"oee": {{ values.dashboards.kpis.oee_target }}}
    }
    """,
    """
    {
      "title": "{{ plant.name | upper }} overview",
      "theme": {{ values.dashboards.theme | to_json }},
      "panels": [
    {%- for sensor in values.edge.sensors if sensor.kind == "temperature" %}
        {"type": "heatmap", "title": "{{ sensor.id }}", "query": "readings(sensor={{ sensor.id }})"}{{ "," if not loop.last }}
    {%- endfor %}
      ]
    }
    """,
]
ENERGY_DASHBOARD = """
    {
      "title": "{{ plant.name | title }} - energy per part",
      "panels": [
    {%- for line in range(1, values.site.lines + 1) %}
        {"type": "timeseries", "title": "Line {{ line }} kWh per part", "query": "energy(line={{ line }})"}{{ "," if not loop.last }}
    {%- endfor %}
      ]
    }
    """
PRESSURE_DASHBOARD = """
    {"title": "{{ plant.name | title }} - pressure", "limit": {{ values.ingest.alerts.pressure_max }}}
    """

ROLLOUT_YAML = """
version: 1
name: scale-bench
codebase: {repo: ., path: app, ref: "%(release)s"}
layers:
  - name: edge
    target: /opt/factory/edge
    checks:
      - {name: config, type: command, command: "grep -q '^sensors:' current/gateway.yaml", timeout: 5s}
  - name: ingest
    target: /opt/factory/ingest
    restart: {command: current/ingestctl restart, timeout: 20s}
    checks:
      - {name: listening, type: tcp, port: "{{ values.ingest.port }}", retries: 20, interval: 250ms}
      - name: health
        type: http
        url: "http://{{ host.address }}:{{ values.ingest.port }}/health"
        body_contains: '"status": "ok"'
  - name: dashboards
    target: /opt/factory/dashboards
    checks:
      - {name: published, type: playbook, playbook: playbooks/verify-dashboards.yml}
overlays:
  may_replace: [dashboards/*.json.j2, edge/logging.yaml]
  may_add: [dashboards/extra/*.json.j2, edge/extra/*.yaml]
strategy:
  parallelism: 10
  max_failures: "2%%"
  on_failure: continue
  waves:
    - name: canary
      select: {plants: [%(canaries)s]}
      max_failures: 0
      on_failure: halt
    - name: pilot-eu
      select: {tags: [eu], archetypes: [assembly], exclude: [%(canaries)s]}
      bake: 10m
    - name: process
      select: {archetypes: [process], exclude: [%(canaries)s]}
      approval: true
    - name: americas
      select: {tags: [na, sa], archetypes: [assembly, packaging], exclude: [%(canaries)s]}
      approval: true
    - name: everyone-else
      select: {remaining: true}
      parallelism: 50
"""

PLAYBOOK = """
- hosts: dashboards
  gather_facts: false
  tasks:
    - ansible.builtin.stat: {path: "{{ rollout_target }}/current/plant-overview.json"}
"""

REGIONS: dict[str, tuple[float, list[str]]] = {
    "eu": (0.35, ["Europe/Berlin", "Europe/Paris", "Europe/Madrid", "Europe/Warsaw", "Europe/Prague", "Europe/Rome",
                  "Europe/London", "Europe/Stockholm", "Europe/Budapest", "Europe/Lisbon"]),
    "na": (0.25, ["America/Chicago", "America/New_York", "America/Detroit", "America/Denver", "America/Los_Angeles",
                  "America/Monterrey", "America/Toronto", "America/Mexico_City"]),
    "sa": (0.10, ["America/Sao_Paulo", "America/Argentina/Buenos_Aires", "America/Santiago", "America/Bogota"]),
    "apac": (0.30, ["Asia/Tokyo", "Asia/Shanghai", "Asia/Kolkata", "Asia/Seoul", "Asia/Bangkok", "Asia/Jakarta",
                    "Australia/Sydney", "Asia/Ho_Chi_Minh", "Asia/Manila"]),
}
ARCHETYPES = {"assembly": 0.5, "packaging": 0.3, "process": 0.2}
EXTRA_TAGS = ["brownfield", "greenfield", "24x7", "union", "food-grade", "high-volume", "export"]
ARCHETYPE_VALUES = {
    "assembly": "site:\n  shift_hours: 8\n",
    "packaging": """
        site:
          lines: 4
        edge:
          protocol: mqtt
          poll_interval_ms: 250
          sensors:
            - {id: l1-count, line: 1, kind: count, address: "factory/l1/count"}
            - {id: l2-count, line: 2, kind: count, address: "factory/l2/count"}
            - {id: l3-count, line: 3, kind: count, address: "factory/l3/count"}
            - {id: l4-count, line: 4, kind: count, address: "factory/l4/count"}
            - {id: l1-vib, line: 1, kind: vibration, address: "factory/l1/vibration"}
        ingest:
          batch_size: 500
        """,
    "process": """
        edge:
          protocol: modbus
          poll_interval_ms: 1000
          sensors:
            - {id: l1-temp, line: 1, kind: temperature, address: "40001"}
            - {id: l1-press, line: 1, kind: pressure, address: "40011"}
            - {id: l2-temp, line: 2, kind: temperature, address: "40101"}
            - {id: l2-press, line: 2, kind: pressure, address: "40111"}
        dashboards:
          kpis:
            oee_target: 0.75
            performance_target: 0.88
        """,
}
KINDS = ["temperature", "vibration", "pressure", "count"]


def _dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


@dataclass(frozen=True)
class PlantSpec:
    name: str
    region: str
    archetype: str
    timezone: str
    tags: tuple[str, ...]
    lines: int


def _plants(n: int, rng: random.Random) -> list[PlantSpec]:
    # The first plants are fixed so that even 10 plants give every wave someone to take.
    fixed = [("eu", "assembly"), ("eu", "assembly"), ("eu", "assembly"), ("apac", "process"), ("na", "packaging")]
    out = []
    for i in range(n):
        region, archetype = fixed[i] if i < len(fixed) else (_pick(rng, {r: w for r, (w, _) in REGIONS.items()}),
                                                              _pick(rng, ARCHETYPES))
        tags = (region, *sorted(rng.sample(EXTRA_TAGS, rng.randint(0, 3))))
        lines = rng.randint(1, 6)
        out.append(PlantSpec(f"{region}-plant-{i:05d}", region, archetype, rng.choice(REGIONS[region][1]), tags, lines))
    return out


def _windows(rng: random.Random) -> str:
    if rng.random() < 0.2:
        return "windows: always\n"
    days = [["sat", "sun"], ["sun"], ["mon", "tue", "wed", "thu", "fri"], ["sat"]]
    parts = ["windows:\n"]
    for chosen in rng.sample(days, rng.randint(1, 2)):
        start = rng.choice(["01:00", "02:00", "22:00", "23:30", "06:00"])
        end = rng.choice(["05:00", "06:00", "04:30"]) if start != "06:00" else "14:00"
        parts.append(f"  - {{days: [{', '.join(chosen)}], start: \"{start}\", end: \"{end}\"}}\n")
    return "".join(parts)


def _plant_file(p: PlantSpec, rng: random.Random) -> str:
    return (
        f"# {p.name}: {p.archetype} plant, {p.lines} lines\n"
        f"archetype: {p.archetype}\ntimezone: {p.timezone}\ntags: [{', '.join(p.tags)}]\n" + _windows(rng)
    )


def _inventory(p: PlantSpec, index: int) -> str:
    net = f"10.{index // 250 % 250}.{index % 250}"
    gateways = "".join(
        f"        {p.name}-gw{k}:\n          ansible_host: {net}.{10 + k}\n          line: {k}\n"
        for k in range(1, min(p.lines, 3) + 1)
    )
    return (
        f"# Hosts of plant {p.name}\nall:\n  vars:\n    ansible_connection: local\n    plant: {p.name}\n"
        f"  children:\n    edge:\n      hosts:\n{gateways}"
        f"    ingest:\n      hosts:\n        {p.name}-ingest:\n          ansible_host: {net}.20\n"
        f"    dashboards:\n      hosts:\n        {p.name}-dash:\n          ansible_host: {net}.21\n"
    )


def _sensors(lines: int, rng: random.Random) -> list[str]:
    out = []
    for line in range(1, lines + 1):
        for kind in sorted(rng.sample(KINDS, rng.randint(1, 3))):
            out.append(f'    - {{id: l{line}-{kind[:4]}, line: {line}, kind: {kind}, address: "PLC{line}.{kind}"}}')
    return out


def _plant_values(p: PlantSpec, rng: random.Random) -> str | None:
    """Small realistic differences; None for a plant that runs the archetype as it is."""
    if rng.random() < 0.15:
        return None
    site, edge, ingest, dash = [], [], [], []
    if rng.random() < 0.6:
        site.append(f"  lines: {p.lines}")
        edge.append("  sensors:")
        edge += _sensors(p.lines, rng)
    if rng.random() < 0.3:
        site.append("  shift_hours: 12\n  shifts: [day, night]")
    if rng.random() < 0.3:
        edge.append(f"  labels: {{cell: cell-{rng.randint(1, 40)}, cost_center: cc{rng.randint(100, 999)}}}")
    if rng.random() < 0.2:
        ingest.append(f"  port: {8700 + rng.randint(1, 99)}")
    if rng.random() < 0.3:
        ingest.append(f"  retention_hours: {rng.choice([24, 48, 96, 168])}")
    if rng.random() < 0.2:
        ingest.append(f"  alerts:\n    temperature_max: {rng.randint(70, 120)}")
    if rng.random() < 0.5:
        dash.append(f"  kpis:\n    oee_target: {rng.randint(70, 92) / 100}")
    if rng.random() < 0.1:
        dash.append("  theme: dark")
    sections = [("site", site), ("edge", edge), ("ingest", ingest), ("dashboards", dash)]
    body = "".join(f"{key}:\n" + "\n".join(lines) + "\n" for key, lines in sections if lines)
    return f"# {p.name}: local differences\n" + (body or "site:\n  shift_hours: 8\n")


def _overlay_files(rng: random.Random) -> dict[str, str]:
    """Overlay files of about one plant in twelve: a replaced overview, added dashboards or maps."""
    roll = rng.random()
    if roll < 0.04:
        return {"dashboards/plant-overview.json.j2": _dedent(rng.choice(OVERVIEW_VARIANTS))}
    if roll < 0.07:
        return {"dashboards/extra/energy.json.j2": _dedent(ENERGY_DASHBOARD)}
    if roll < 0.085:
        return {"edge/extra/modbus-map.yaml": "registers:\n  - {address: 40001, name: oven_temp}\n"}
    return {}


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, env={**os.environ, **GIT_ENV}, check=True, capture_output=True)


def generate(root: Path, n: int, seed: int = SEED) -> None:
    """A project of ``n`` plants at ``root``: a git repository with release tag RELEASE."""
    rng = random.Random(seed)
    root.mkdir(parents=True)
    for rel, text in CODEBASE.items():
        _write(root, f"app/{rel}", _dedent(text))
    for rel in EXECUTABLES:
        (root / "app" / rel).chmod(0o755)
    plants = _plants(n, rng)
    canaries = ", ".join(p.name for p in plants[: min(2, n)])
    _write(root, "rollout.yaml", _dedent(ROLLOUT_YAML) % {"release": RELEASE, "canaries": canaries})
    _write(root, "playbooks/verify-dashboards.yml", _dedent(PLAYBOOK))
    for archetype, text in ARCHETYPE_VALUES.items():
        _write(root, f"overlays/_archetypes/{archetype}/values.yaml", _dedent(text))
    _write(root, "overlays/_archetypes/process/files/dashboards/extra/pressure.json.j2", _dedent(PRESSURE_DASHBOARD))
    for i, p in enumerate(plants):
        _write(root, f"plants/{p.name}.yaml", _plant_file(p, rng))
        _write(root, f"inventories/{p.name}.yml", _inventory(p, i))
        values = _plant_values(p, rng)
        if values is not None:
            _write(root, f"overlays/{p.name}/values.yaml", values)
        files = _overlay_files(rng)
        for rel, text in files.items():
            _write(root, f"overlays/{p.name}/files/{rel}", text)
        if files:
            _write(root, f"overlays/{p.name}/README.md", f"Why {p.name} differs: {', '.join(files)}.\n")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", f"{n} plants")
    _git(root, "tag", RELEASE)


# -- measuring ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    seconds: float
    user_s: float
    sys_s: float
    rss_mb: float


def run_cli(args: Sequence[str], pythonpath: str | None, cache: Path | None = None) -> Sample:
    """Run the rollout CLI in a fresh process, output to /dev/null; its rusage is its own and its workers'.
    Its plant cache is ``cache`` (default: none, every plant parsed)."""
    env = {**os.environ, "ROLLOUT_CACHE_DIR": str(cache) if cache is not None else ""}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    # -P: no working folder on sys.path, so PYTHONPATH (a baseline) wins over a rollout/ found there.
    cmd = [sys.executable, "-P", "-c", "from rollout.cli.commands import main; main()", *args]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)  # this child's rusage, with the workers it waited for
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:  # once more, to show why
        again = subprocess.run(cmd, env=env, capture_output=True, text=True)
        raise SystemExit(f"{' '.join(args)} exited {proc.returncode}:\n{(again.stdout + again.stderr)[-3000:]}")
    # ru_maxrss: the largest single process (Linux, kilobytes), not a sum over forked workers.
    return Sample(seconds, usage.ru_utime, usage.ru_stime, usage.ru_maxrss / 1024)


@dataclass(frozen=True)
class Figure:
    size: int
    command: str
    runs: int
    seconds: float
    """Median wall time."""
    user_s: float
    """Median user time, workers included."""
    sys_s: float
    """Median system time (the kernel: mostly creating files), workers included."""
    rss_mb: float
    """Highest peak RSS of the runs."""


def figure(size: int, command: str, runs: int, once: Callable[[], Sample]) -> Figure:
    samples = [once() for _ in range(runs)]
    return Figure(
        size,
        command,
        runs,
        statistics.median(s.seconds for s in samples),
        statistics.median(s.user_s for s in samples),
        statistics.median(s.sys_s for s in samples),
        max(s.rss_mb for s in samples),
    )


def measure(project: Path, scratch: Path, size: int, runs: int, pythonpath: str | None, validate: bool) -> list[Figure]:
    """Figures of one project. Each first render gets a new empty folder and a new empty cache
    (deleting them just before would slow the next: ext4 skips recently freed inodes), so
    ``scratch`` is emptied at the end; a re-render goes to the last one's folder with its cache,
    as a user's second render finds the first's."""
    base = ["-C", str(project)]
    folders = iter(scratch / f"{size}-{k}" for k in range(runs + 1))
    last = scratch / f"{size}-none"
    figures: list[Figure] = []

    def render_into(out: Path) -> Sample:
        command = [*base, "render", "--json", "--release", RELEASE, "--out", str(out)]
        return run_cli(command, pythonpath, out.with_name(out.name + "-cache"))

    def first_render() -> Sample:
        nonlocal last
        last = next(folders)
        return render_into(last)

    def record(command: str, once: Callable[[], Sample]) -> None:
        f = figure(size, command, runs, once)
        figures.append(f)
        print(
            f"  {size:>6} {command:<11} {f.seconds:8.3f} s {f.user_s:8.2f} user {f.sys_s:8.2f} sys {f.rss_mb:7.1f} MB",
            file=sys.stderr,
            flush=True,
        )

    plan = [*base, "plan", "--json", "--release", RELEASE]
    record("plan", lambda: run_cli(plan, pythonpath))
    cache = scratch / f"{size}-cache"
    run_cli(plan, pythonpath, cache)  # fills the cache: the runs timed find every plant unchanged
    record("plan-cached", lambda: run_cli(plan, pythonpath, cache))
    record("render", first_render)
    record("re-render", lambda: render_into(last))
    if validate:
        record("validate", lambda: run_cli([*base, "validate", "--json", "--release", RELEASE], pythonpath))
    return figures


def startup(pythonpath: str | None, runs: int) -> Figure:
    """What every command pays before any work: the interpreter and rollout's imports."""
    return figure(0, "startup", runs, lambda: run_cli(["--version"], pythonpath))


# -- reporting ------------------------------------------------------------------------------


def table(figures: list[Figure], start: Figure) -> str:
    smallest = min(f.size for f in figures)
    by = {(f.size, f.command): f for f in figures}
    head = (
        f"{'plants':>7} {'command':<11} {'runs':>4} {'median s':>9} {'user s':>7} {'sys s':>6} {'ms/plant':>9} "
        f"{'vs smallest':>11} {'x prev size':>11} {'vs render':>9} {'peak MB':>8}"
    )
    rows = [head, "-" * len(head)]
    rows.append(
        f"{'-':>7} {'startup':<11} {start.runs:>4} {start.seconds:>9.3f} {start.user_s:>7.2f} {start.sys_s:>6.2f} {'':>9} "
        f"{'':>11} {'':>11} {'':>9} {start.rss_mb:>8.1f}"
    )
    sizes = sorted({f.size for f in figures})
    for f in sorted(figures, key=lambda f: (f.size, ORDER.index(f.command))):
        per = f.seconds / f.size
        rel = per / (by[(smallest, f.command)].seconds / smallest)
        prev = [s for s in sizes if s < f.size]
        growth = f"{f.seconds / by[(prev[-1], f.command)].seconds:.2f}" if prev else "-"
        vs_render = f"{f.seconds / by[(f.size, 'render')].seconds:.3f}" if f.command != "render" else "1"
        rows.append(
            f"{f.size:>7} {f.command:<11} {f.runs:>4} {f.seconds:>9.3f} {f.user_s:>7.2f} {f.sys_s:>6.2f} {per * 1000:>9.3f} "
            f"{rel:>11.3f} {growth:>11} {vs_render:>9} {f.rss_mb:>8.1f}"
        )
    return "\n".join(rows)


ORDER = ["plan", "plan-cached", "render", "re-render", "validate"]


def marginal(by: dict[tuple[int, str], Figure], command: str, lo: int, hi: int) -> float:
    """Seconds per extra plant between two sizes: the cost growth with start-up taken out."""
    return (by[(hi, command)].seconds - by[(lo, command)].seconds) / (hi - lo)


def verdicts(figures: list[Figure]) -> list[str]:
    by = {(f.size, f.command): f for f in figures}
    sizes = sorted({f.size for f in figures})
    out = []
    if len(sizes) >= 3:
        a, b, c = sizes[-3:]
        for command in ("render", "plan"):
            ratio = marginal(by, command, b, c) / marginal(by, command, a, b)
            state = "met" if ratio <= 1.5 else "not met"
            out.append(
                f"linear {command}: {state} (marginal cost per plant {b:,}->{c:,} is {ratio:.2f}x that of "
                f"{a:,}->{b:,}; met if <= 1.5x)"
            )
    if (1000, "render") in by:
        s = by[(1000, "render")].seconds
        out.append(f"1,000 plants rendered in < 10 s on {os.cpu_count()} cores: {'met' if s < 10 else 'not met'} "
                   f"({s:.2f} s)")
    big = max(sizes)
    first, again, plan_s, cached_s = (by[(big, c)].seconds for c in ("render", "re-render", "plan", "plan-cached"))
    # Loading the project (all a plan does) is paid again by any re-render, from the plant cache the
    # first render filled: what must be nearly free is the rest, the rendering and writing of plants
    # whose inputs did not change.
    left = (again - cached_s) / (first - plan_s)
    out.append(
        f"unchanged plants re-rendered nearly free: {'met' if left <= 0.2 else 'not met'} "
        f"({big:,} plants: re-render {again:.2f} s = {again / first:.0%} of the first render {first:.2f} s; "
        f"beyond loading the project (a first render: plan, {plan_s:.2f} s; a re-render: plan from the cache, "
        f"{cached_s:.2f} s) it costs {left:.0%} of what rendering did; met if <= 20%)"
    )
    for command, what in (("plan", "every plant parsed"), ("plan-cached", "unchanged plants from the cache")):
        if (BIG, command) in by:
            plan = by[(BIG, command)]
            ok = plan.seconds < 2 and plan.rss_mb < 500
            out.append(f"10,000-plant plan under 2 s and 500 MB, {what}: {'met' if ok else 'not met'} "
                       f"({plan.seconds:.2f} s, {plan.rss_mb:.0f} MB)")
    if (BIG, "validate") in by:
        check = by[(BIG, "validate")]
        out.append(f"10,000-plant validate under 10 s: {'met' if check.seconds < 10 else 'not met'} "
                   f"({check.seconds:.2f} s; hot paths: bench/speed.py)")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,100,1000,10000", help="plant counts, comma-separated")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure below 10,000 plants (median)")
    parser.add_argument("--big-runs", type=int, default=1, help="runs per figure at 10,000 plants and more")
    parser.add_argument("--keep", type=Path, default=None, help="generate into (and reuse) this folder")
    parser.add_argument("--pythonpath", default=None, help="run the rollout package found here (a baseline)")
    parser.add_argument("--no-validate", dest="validate", action="store_false", help="skip rollout validate")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    work = args.keep or Path(tempfile.mkdtemp(prefix="rollout-scale-"))
    scratch = work / "bundles"
    figures: list[Figure] = []
    load_before = os.getloadavg()
    try:
        start = startup(args.pythonpath, args.runs)
        for size in sizes:
            project = work / f"plants-{size}" / "project"
            if not (project / ".git").exists():
                shutil.rmtree(project.parent, ignore_errors=True)
                t0 = time.perf_counter()
                generate(project, size)
                print(f"generated {size} plants in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
            runs = args.big_runs if size >= BIG else args.runs
            figures += measure(project, scratch, size, runs, args.pythonpath, args.validate)
    finally:
        shutil.rmtree(scratch if args.keep else work, ignore_errors=True)
    load = ", ".join(f"{a:.1f}/{b:.1f}" for a, b in zip(load_before, os.getloadavg(), strict=True))
    print(
        f"rollout scale benchmark: {os.cpu_count()} cores, Python {sys.version.split()[0]}, seed {SEED}; "
        f"load average (1/5/15 min) before/after: {load}"
    )
    print(table(figures, start))
    print()
    for line in verdicts(figures):
        print(line)
    if args.json:
        args.json.write_text(json.dumps([f.__dict__ for f in [start, *figures]], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
