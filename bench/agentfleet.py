"""A fleet of simulated plant agents in one asyncio process, speaking ``/api/v1/agent`` as
``rollout agent`` does: long-poll for the plant's order, take it, fetch its blobs by hash
(the kit's and each bundle's index, and every bundle file they list), send the events a real
agent sends for its plant (``tests/test_agent.py``'s outbox), then the result, and beat.

A plant fails at a seeded rate: its last layer's check fails, and it sends ``layer.failed``
and the rollback a real agent runs (``rollback.started``, ``rollback.layer`` per layer put
back, ``plant.rolled_back``). Each step takes a short simulated time; the events of a step go
in one post, as a real agent's outbox delivers what it holds when it wakes.

The fleet speaks HTTP through aiohttp, not the httpx of ``rollout agent``: it is the load, and
on the same two cores as the server it measures every CPU second it spends is one the server
and the orchestrator do not get (httpx cost it about 70 ms of CPU a plant, aiohttp a fraction).
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

Event = dict[str, Any]
HOSTS = {"edge": "gw", "app": "app"}


@dataclass
class FleetStats:
    """What the fleet measured, client side."""

    post_latency: list[float] = field(default_factory=list)
    """Seconds of each events post (request sent to answer read)."""
    posts: int = 0
    events: int = 0
    blobs: int = 0
    blob_bytes: int = 0
    polls: int = 0
    beats: int = 0
    finished: dict[str, str] = field(default_factory=dict)
    """Plant -> outcome it reported."""
    errors: list[str] = field(default_factory=list)
    retried: int = 0
    """Requests sent again after their connection failed."""
    busy_s: float = 0.0
    """Seconds agents spent in requests other than long polls (summed over agents)."""


@dataclass(frozen=True)
class Pace:
    """How long each simulated step takes on the node (seconds) and how often an agent beats."""

    stage_s: float = 0.2
    activate_s: float = 0.1
    check_s: float = 0.1
    beat_s: float = 30.0
    poll_s: float = 20.0
    all_blobs: bool = False
    cached: frozenset[str] = frozenset()
    """Hashes of the files every plant's bundles share (what a node's cache holds already)."""


def _ev(kind: str, plant: str, release: str, layer: str | None = None, **more: Any) -> Event:
    event: Event = {"type": "event", "kind": kind, "plant": plant, "time": round(time.time(), 3), "release": release}
    if layer is not None:
        event["layer"] = layer
    event.update(more)
    return event


def layer_steps(plant: str, release: str, layer: str, host: str, commit: str, ok: bool) -> list[list[Event]]:
    """A layer's events in the groups a real agent's outbox would deliver them (one post each)."""
    check = {"check": "status", "outcome": "succeeded" if ok else "failed"}
    attempts = [
        _ev("check.attempt", plant, release, layer, host=host,
            detail={**check, "attempt": n, "detail": "exit 0: " if ok else "exit 1: ", "duration_s": 0.004})
        for n in range(1, 2 if ok else 4)
    ]  # fmt: skip
    return [
        [_ev("layer.staging", plant, release, layer, detail={"hosts": [host]})],
        [_ev("layer.staged", plant, release, layer), _ev("layer.activating", plant, release, layer,
                                                         detail={"action": "deploy"})],
        [_ev("layer.activated", plant, release, layer, detail={"commit": commit, "overlay_hash": "0" * 64}),
         _ev("layer.checking", plant, release, layer)],
        [*attempts, _ev("check.result", plant, release, layer, host=host,
                        detail={**check, "attempts": len(attempts)})],
    ]  # fmt: skip


def result_of(plant: str, release: str, outcome: str, hosts: dict[str, str], reason: str = "") -> dict[str, Any]:
    asset = {
        "os": {"name": "Debian GNU/Linux", "version": "12"}, "kernel": "6.1.0-28-amd64", "arch": "x86_64",
        "packager": "dpkg", "packages": {f"pkg{i:02d}": f"1.{i}.0-1" for i in range(40)}, "collected": time.time(),
    }  # fmt: skip
    assets = [{"plant": plant, "host": h, **asset, "releases": {lay: release}} for lay, h in hosts.items()]
    checks = [
        {"check": "status", "host": h,
         "attempts": [{"attempt": 1, "outcome": "succeeded", "detail": "exit 0: ", "duration_s": 0.004}]}
        for h in hosts.values()
    ]  # fmt: skip
    return {"plant": plant, "outcome": outcome, "release": release, "reason": reason, "checks": checks,
            "assets": assets if outcome == "updated" else []}  # fmt: skip


Failed = (aiohttp.ClientError, asyncio.TimeoutError)
"""What a request may meet on the way: refused, cut, timed out."""


@dataclass(frozen=True)
class Answer:
    status_code: int
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    def json(self) -> Any:
        import json

        return json.loads(self.content)


class Client:
    """One agent's connections to the centre (``limit`` of them, kept alive), read whole per answer."""

    def __init__(self, base: str, tls: ssl.SSLContext, limit: int, read_s: float) -> None:
        self.base = base
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=60.0, sock_read=read_s)
        connector = aiohttp.TCPConnector(limit=limit, ssl=tls)
        self.session = aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False)

    async def request(self, method: str, path: str, **kw: Any) -> Answer:
        async with self.session.request(method, self.base + path, **kw) as response:
            return Answer(response.status, await response.read())

    async def get(self, path: str, **kw: Any) -> Answer:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> Answer:
        return await self.request("POST", path, **kw)

    async def close(self) -> None:
        await self.session.close()


class SimAgent:
    """One plant's agent."""

    def __init__(self, plant: str, token: str, fails: bool, pace: Pace, stats: FleetStats) -> None:
        self.plant, self.fails, self.pace, self.stats = plant, fails, pace, stats
        self.auth = {"Authorization": f"Bearer {token}", "User-Agent": "rollout-agent/1 (simulated)"}
        self.current = ""

    async def run(self, poll: Client, work: Client, stop: asyncio.Event) -> None:
        beating = asyncio.create_task(self._beat(work, stop))
        try:
            while not stop.is_set():
                try:
                    found = await poll.get("/orders/next", params={"wait": self.pace.poll_s}, headers=self.auth)
                except Failed as exc:
                    self.stats.errors.append(f"{self.plant} poll: {type(exc).__name__}: {exc}")
                    await asyncio.sleep(1.0)
                    continue
                self.stats.polls += 1
                if found.status_code == 200:
                    await self._order(work, found.json())
        finally:
            beating.cancel()

    async def _call(self, work: Client, method: str, path: str, **kw: Any) -> Answer:
        """One request, sent again once if the connection failed under it (a kept-alive connection
        the server closed as it was reused): every agent request is idempotent, as ``rollout
        agent`` relies on (events keyed by seq, a take or a result again answered alike)."""
        began = time.monotonic()
        try:
            response = await work.request(method, path, headers=self.auth, **kw)
        except Failed:
            self.stats.retried += 1
            await asyncio.sleep(0.2)
            response = await work.request(method, path, headers=self.auth, **kw)
        self.stats.busy_s += time.monotonic() - began
        if response.status_code >= 400:
            raise RuntimeError(f"{self.plant} {method} {path}: {response.status_code} {response.text[:200]}")
        return response

    async def _blob(self, work: Client, digest: str) -> bytes:
        data = (await self._call(work, "GET", f"/blobs/{digest}")).content
        self.stats.blobs += 1
        self.stats.blob_bytes += len(data)
        return data

    async def _fetch(self, work: Client, assignment: dict[str, Any]) -> None:
        """The kit's index and each bundle's index, and the files they list that the node does not
        keep yet (with ``all_blobs``, every file; else those no other plant shares: an upgrade whose
        common files the node's blob cache holds from the release before), each checked by hash."""
        import hashlib
        import json

        wanted = [assignment["kit"], *assignment["indexes"].values()]
        files: list[str] = []
        for digest in wanted:
            data = await self._blob(work, digest)
            if hashlib.sha256(data).hexdigest() != digest:
                raise RuntimeError(f"{self.plant}: blob {digest[:12]} does not match its hash")
            if digest != assignment["kit"]:
                files += [f["sha256"] for f in json.loads(data)["files"]]
        for digest in sorted(set(files) if self.pace.all_blobs else set(files) - self.pace.cached):
            await self._blob(work, digest)

    async def _send(self, work: Client, oid: str, events: list[Event], seq: int) -> int:
        body = {"events": [{"seq": seq + i + 1, "event": e} for i, e in enumerate(events)]}
        began = time.monotonic()
        await self._call(work, "POST", f"/orders/{oid}/events", json=body)
        self.stats.post_latency.append(time.monotonic() - began)
        self.stats.posts += 1
        self.stats.events += len(events)
        return seq + len(events)

    async def _order(self, work: Client, found: dict[str, Any]) -> None:
        oid, a = str(found["id"]), found["assignment"]
        try:
            self.current = oid
            await self._call(work, "POST", f"/orders/{oid}/take")
            await self._fetch(work, a)
            outcome, seq = await self._deploy(work, oid, a)
            result = result_of(self.plant, a["order"]["release"], outcome, self._hosts(a),
                               "" if outcome == "updated" else "check status failed")  # fmt: skip
            await self._call(work, "POST", f"/orders/{oid}/result", json={"last_seq": seq, "result": result})
            self.stats.finished[self.plant] = outcome
        except (*Failed, RuntimeError, KeyError, ValueError) as exc:
            self.stats.errors.append(f"{self.plant} order {oid}: {type(exc).__name__}: {exc}")
        finally:
            self.current = ""

    def _hosts(self, a: dict[str, Any]) -> dict[str, str]:
        """Layer -> its host (``agentproject``'s inventory: one host a layer)."""
        return {str(lay["layer"]): f"{self.plant}-{HOSTS[str(lay['layer'])]}" for lay in a["order"]["layers"]}

    async def _deploy(self, work: Client, oid: str, a: dict[str, Any]) -> tuple[str, int]:
        release, commit, plant, p = a["order"]["release"], a["order"]["commit"], self.plant, self.pace
        hosts = self._hosts(a)
        before = {f"{lay}/{h}": {"release_dir": None, "release": None, "commit": None, "bundle_hash": None}
                  for lay, h in hosts.items()}  # fmt: skip
        seq = await self._send(work, oid, [_ev("plant.started", plant, release)], 0)
        opening = [
            _ev("plant.before", plant, release, detail={"before": before}),
            _ev("plant.preflight", plant, release),
        ]
        seq = await self._send(work, oid, opening, seq)
        layers = list(hosts)
        for n, layer in enumerate(layers):
            ok = not (self.fails and n == len(layers) - 1)
            steps = layer_steps(plant, release, layer, hosts[layer], commit, ok)
            for events, wait in zip(steps, (p.stage_s, p.activate_s, p.check_s, 0.0), strict=True):
                await asyncio.sleep(wait)
                seq = await self._send(work, oid, events, seq)
            if not ok:
                return "rolled_back", await self._roll_back(work, oid, a, layers[: n + 1], seq)
        return "updated", await self._send(
            work, oid, [_ev("plant.done", plant, release, detail={"changed": True})], seq
        )

    async def _roll_back(self, work: Client, oid: str, a: dict[str, Any], touched: list[str], seq: int) -> int:
        plant, release, reason = self.plant, a["order"]["release"], "check status failed"
        failed = [
            _ev("layer.failed", plant, release, touched[-1], detail={"reason": reason}),
            _ev("rollback.started", plant, release, detail={"reason": reason, "layers": sorted(touched)}),
        ]
        seq = await self._send(work, oid, failed, seq)
        for layer in reversed(touched):
            await asyncio.sleep(self.pace.activate_s)
            seq = await self._send(
                work, oid, [_ev("rollback.layer", plant, None, layer, detail={"to": "nothing"})], seq
            )
        return await self._send(work, oid, [_ev("plant.rolled_back", plant, release, detail={"reason": reason})], seq)

    async def _beat(self, work: Client, stop: asyncio.Event) -> None:
        await asyncio.sleep(random.uniform(0, self.pace.beat_s))  # spread, as agents started at different times
        while not stop.is_set():
            try:
                detail = {"order": self.current, "outbox": 0, "node": "sim"}
                await self._call(work, "POST", "/heartbeat", json={"detail": detail})
                self.stats.beats += 1
            except (*Failed, RuntimeError) as exc:
                self.stats.errors.append(f"{self.plant} beat: {type(exc).__name__}")
            await asyncio.sleep(self.pace.beat_s)


async def run_fleet(
    server: str, tokens: dict[str, str], failing: set[str], pace: Pace, stats: FleetStats, stop: asyncio.Event
) -> None:
    """Every agent of ``tokens`` until ``stop``. Each agent has its own client and connections, as a
    real one has (one shared pool of thousands of connections costs the client more than the server)."""
    base = f"{server}/api/v1/agent"
    tls = ssl.create_default_context()  # one context for all: building one a client is most of its cost

    async def one(agent: SimAgent) -> None:
        client = Client(base, tls, limit=3, read_s=pace.poll_s + 60.0)
        try:
            await agent.run(client, client, stop)
        finally:
            await client.close()

    agents = [SimAgent(p, t, p in failing, pace, stats) for p, t in tokens.items()]
    await asyncio.gather(*(one(a) for a in agents))


def seeded_failures(plants: list[str], rate: float, seed: int) -> set[str]:
    rng = random.Random(seed)
    return {p for p in plants if rng.random() < rate}
