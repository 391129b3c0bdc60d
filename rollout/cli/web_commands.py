"""``rollout serve`` (the console and the HTTP API) and ``rollout user add|revoke|list``."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import click

from rollout import service
from rollout.cli.commands import EXIT_OK, _common, _console, _project, cli, vault_option
from rollout.cli.views import output
from rollout.engine.executor import default_operator
from rollout.errors import ConfigError
from rollout.service import users

DEFAULT_LISTEN = "127.0.0.1:8470"
KEEP_ALIVE_S = 75
"""Seconds an idle connection is kept open: longer than an agent's long poll and beat interval,
so an agent's connections stay up between requests instead of racing the server's close."""


def parse_listen(text: str) -> tuple[str, int]:
    """``ADDR:PORT`` (``[v6]:PORT`` for IPv6) as uvicorn takes it; bad input is a ConfigError."""
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        number = -1
    if not sep or not 0 < number < 65536:
        raise ConfigError.one(
            "--listen", "not an address and port", expected="ADDR:PORT, e.g. 127.0.0.1:8470 or [::1]:8470", found=text
        )
    return host, number


def _tls(cert: Path | None, key: Path | None) -> None:
    if (cert is None) != (key is None):
        raise ConfigError.one("--tls-cert/--tls-key", "one without the other", expected="both files, or neither")
    for name, path in (("--tls-cert", cert), ("--tls-key", key)):
        if path is not None and not os.access(path, os.R_OK):
            raise ConfigError.one(name, f"cannot read {path}", expected="a readable PEM file")


@cli.command()
@_common
@vault_option
@click.option("--listen", default=DEFAULT_LISTEN, show_default=True, metavar="ADDR:PORT", help="Where to listen.")
@click.option(
    "--tls-cert", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Serve HTTPS: certificate (PEM)."
)
@click.option(
    "--tls-key", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Serve HTTPS: its key (PEM)."
)
def serve(directory: Path | None, as_json: bool, listen: str, tls_cert: Path | None, tls_key: Path | None) -> int:
    """The web console and the HTTP API (/api/v1, OpenAPI at /api/v1/openapi.json).

    Stateless: run as many as you like on one PostgreSQL state; on SQLite it serves one machine.
    Sign in with a token from 'rollout user add'.
    """
    host, port = parse_listen(listen)
    _tls(tls_cert, tls_key)
    project = _project(directory)
    journal = service.open_state(project)
    import uvicorn  # the web stack loads only for the server: every other verb starts faster

    from rollout.web.app import create_app

    app = create_app(project, journal, secure=tls_cert is not None)
    scheme = "https" if tls_cert else "http"
    shown = f"[{host}]" if ":" in host else host
    url = f"{scheme}://{shown}:{port}/"
    if as_json:
        output.emit_json(_console(), [{"type": "serving", "url": url, "state": service.state_url(project).shown}])
    else:
        _console().print(f"rollout console on {url} (state {service.state_url(project).shown}); Ctrl-C stops it")
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
        loop="uvloop",
        http="httptools",  # both in C: an agent's small request costs a fraction of asyncio's and h11's
        log_level="warning",
        timeout_graceful_shutdown=5,
        timeout_keep_alive=KEEP_ALIVE_S,
        proxy_headers=False,  # the client address (sign-in throttling) is the peer's, not a header's
    )
    uvicorn.Server(config).run()
    journal.close()
    return EXIT_OK


@cli.group()
def user() -> None:
    """Who may use the console and the API: add (prints a one-time token), revoke, list."""


@user.command("add")
@_common
@click.argument("name")
@click.option("--role", required=True, help="viewer, plant-it, release-engineer, admin or agent.")
@click.option("--plant", "-p", "plants", multiple=True, metavar="PLANT", help="A plant it may reach (plant-it, agent).")
def user_add(directory: Path | None, as_json: bool, name: str, role: str, plants: tuple[str, ...]) -> int:
    """Allow NAME in with ROLE; prints its token once (only a hash of it is kept)."""
    project = _project(directory)
    by = os.environ.get("ROLLOUT_OPERATOR") or default_operator()
    added, token = users.add_user(project, service.open_state(project), name, role, list(plants), by)
    if as_json:
        record = {"type": "user", "name": added.name, "role": added.role, "plants": list(added.plants), "token": token}
        output.emit_json(_console(), [record])
    else:
        scope = f" for {', '.join(added.plants)}" if added.plants else ""
        _console().print(f"user {added.name} ({added.role}{scope}) added; its token, shown only now:", highlight=False)
        _console().print(token, highlight=False, soft_wrap=True)
    return EXIT_OK


@user.command("revoke")
@_common
@click.argument("name")
def user_revoke(directory: Path | None, as_json: bool, name: str) -> int:
    """End NAME's access at once: its token and every session it has stop working."""
    users.revoke_user(service.open_state(_project(directory)), name)
    if as_json:
        output.emit_json(_console(), [{"type": "user", "name": name, "revoked": True}])
    else:
        _console().print(f"user {name} revoked", highlight=False)
    return EXIT_OK


@user.command("list")
@_common
def user_list(directory: Path | None, as_json: bool) -> int:
    """Every user with its role, plants and whether it is revoked (never a token)."""
    found = service.open_state(_project(directory)).users()
    if as_json:
        records = (
            {"type": "user", "name": u.name, "role": u.role, "plants": list(u.plants), "revoked": not u.active}
            for u in found
        )
        output.emit_json(_console(), records)
        return EXIT_OK
    for u in found:
        plants = ", ".join(u.plants) or "all plants"
        _console().print(f"{u.name}  {u.role}  {plants}{'' if u.active else '  (revoked)'}", highlight=False)
    return EXIT_OK
