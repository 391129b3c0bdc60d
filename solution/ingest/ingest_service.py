#!/usr/bin/env python3
"""Sensor-reading ingest service of one plant.

POST /readings takes a JSON list of readings ({"sensor", "value", "ts"}) from the edge
gateways and appends them to the plant's data folder; GET /health answers 200 when the
service's configuration is valid and 503, with the reasons, when it is not.

    ingest_service.py CONFIG.json [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

KNOWN_UNITS = {"C", "F", "K", "mm/s", "in/s", "bar", "psi", "kPa", "pcs"}
MAX_BODY = 4 * 1024 * 1024


def config_errors(config: dict) -> list[str]:
    """Everything that makes this configuration unusable."""
    errors = []
    if not 1 <= config.get("port", 0) <= 65535:
        errors.append(f"port {config.get('port')!r} is not a TCP port")
    batch, limit = config.get("batch_size", 0), config.get("queue_limit", 0)
    if not isinstance(batch, int) or batch < 1:
        errors.append(f"batch_size {batch!r} must be a positive integer")
    elif batch > limit:
        errors.append(f"batch_size {batch} exceeds queue_limit {limit}: every batch would be shed")
    ids = [s["id"] for s in config.get("sensors", [])]
    if len(ids) != len(set(ids)):
        errors.append("sensor ids are not unique")
    for sensor in config.get("sensors", []):
        if sensor.get("unit") not in KNOWN_UNITS:
            errors.append(f"sensor {sensor.get('id')}: unknown unit {sensor.get('unit')!r}")
    return errors


class Ingest:
    def __init__(self, config: dict, data_dir: Path) -> None:
        self.config = config
        self.errors = config_errors(config)
        self.sensors = {s["id"]: s for s in config.get("sensors", [])}
        self.data_dir = data_dir
        self.lock = threading.Lock()
        self.received = 0

    def health(self) -> tuple[int, dict]:
        body = {
            "status": "ok" if not self.errors else "invalid-config",
            "plant": self.config.get("plant"),
            "release": self.config.get("release"),
            "sensors": len(self.sensors),
            "received": self.received,
            "errors": self.errors,
        }
        return (200 if not self.errors else 503), body

    def accept(self, readings: object) -> tuple[int, dict]:
        if self.errors:
            return 503, {"error": "configuration invalid", "errors": self.errors}
        if not isinstance(readings, list) or len(readings) > self.config["queue_limit"]:
            return 400, {"error": f"expected a list of at most {self.config['queue_limit']} readings"}
        unknown = sorted({str(r.get("sensor")) for r in readings if not isinstance(r, dict) or r.get("sensor") not in self.sensors})
        if unknown:
            return 422, {"error": "unknown sensors", "sensors": unknown}
        lines = "".join(json.dumps({**r, "unit": self.sensors[r["sensor"]]["unit"]}) + "\n" for r in readings)
        with self.lock:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            with open(self.data_dir / "readings.jsonl", "a", encoding="utf-8") as out:
                out.write(lines)
            self.received += len(readings)
        return 202, {"accepted": len(readings)}


def handler(ingest: Ingest) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body, sort_keys=True).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path == "/health":
                self._send(*ingest.health())
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/readings":
                self._send(404, {"error": "not found"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._send(413, {"error": "body too large"})
                return
            try:
                readings = json.loads(self.rfile.read(length) or b"null")
            except ValueError:
                self._send(400, {"error": "body is not JSON"})
                return
            self._send(*ingest.accept(readings))

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            sys.stderr.write("%s %s\n" % (self.address_string(), format % args))

    return Handler


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    config = json.loads(args.config.read_text(encoding="utf-8"))
    data_dir = args.data_dir or Path(config.get("data_dir") or args.config.parent / "data")
    ingest = Ingest(config, data_dir)
    server = ThreadingHTTPServer((config.get("bind", "127.0.0.1"), config["port"]), handler(ingest))
    print(f"ingest for {config.get('plant')} on {config.get('bind')}:{config['port']}"
          f" ({'healthy' if not ingest.errors else 'INVALID: ' + '; '.join(ingest.errors)})", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
