"""The example's ingest service, as rendered for a plant, run for real on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def ingest(bundle: Path, data: Path) -> Iterator[str]:
    config = json.loads((bundle / "ingest.json").read_text())
    base = f"http://{config['bind']}:{config['port']}"
    proc = subprocess.Popen(
        [sys.executable, str(bundle / "ingest_service.py"), str(bundle / "ingest.json"), "--data-dir", str(data)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(base + "/health", timeout=1)
                break
            except urllib.error.HTTPError:
                break  # answering, even if unhealthy
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail(f"ingest did not start on {base}")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def post(url: str, body: object) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def render(rollout, example: Path, out: Path, release: str, plant: str) -> Path:
    result = rollout("render", "-C", example, "--release", release, "--plant", plant, "--out", out)
    assert result.code == 0, result.text
    return out / plant / "ingest" / "files"


def test_healthy_plant_accepts_readings(example: Path, rollout, tmp_path: Path) -> None:
    bundle = render(rollout, example, tmp_path / "out", "example-2026.11.1", "detroit")
    with ingest(bundle, tmp_path / "data") as base:
        status, health = get(base + "/health")
        assert status == 200 and health["status"] == "ok" and health["plant"] == "detroit"
        assert health["release"] == "example-2026.11.1" and health["sensors"] == 5
        status, body = post(base + "/readings", [{"sensor": "l1-temp", "value": 181.5, "ts": "2026-11-21T08:00:00Z"}])
        assert status == 202 and body == {"accepted": 1}
        status, body = post(base + "/readings", [{"sensor": "nope", "value": 1}])
        assert status == 422 and body["sensors"] == ["nope"]
    stored = [json.loads(line) for line in (tmp_path / "data/readings.jsonl").read_text().splitlines()]
    assert stored == [{"sensor": "l1-temp", "value": 181.5, "ts": "2026-11-21T08:00:00Z", "unit": "F"}]


def test_monterrey_is_unhealthy_on_the_new_release_only(example: Path, rollout, tmp_path: Path) -> None:
    new = render(rollout, example, tmp_path / "new", "example-2026.11.1", "monterrey")
    with ingest(new, tmp_path / "data") as base:
        status, health = get(base + "/health")
        assert status == 503 and health["status"] == "invalid-config"
        assert any("batch_size 2500 exceeds queue_limit 2000" in e for e in health["errors"])
        assert post(base + "/readings", [])[0] == 503
    old = render(rollout, example, tmp_path / "old", "example-2026.11.0", "monterrey")
    with ingest(old, tmp_path / "data") as base:
        status, health = get(base + "/health")
        assert status == 200 and health["release"] == "example-2026.11.0"
