"""Checks that run after a layer is activated, and steps that activate or restart it."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator

from rollout.config.models.common import Duration, Model, Name, RelPath


class CheckBase(Model):
    name: Name
    timeout: Duration = 10.0
    """Seconds one attempt may take."""
    retries: Annotated[int, Field(ge=0, le=1000)] = 3
    """Further attempts after a failed one."""
    interval: Duration = 1.0
    """Seconds between attempts."""


class CommandCheck(CheckBase):
    """A shell command run in the layer's folder on every host of the layer; exit 0 passes."""

    type: Literal["command"]
    command: Annotated[str, Field(min_length=1, max_length=4096)]


class HttpCheck(CheckBase):
    """An HTTP GET; the URL is a template rendered per host (``{{ host.address }}``)."""

    type: Literal["http"]
    url: Annotated[str, Field(min_length=1, max_length=2048)]
    expect_status: Annotated[int, Field(ge=100, le=599)] = 200
    body_contains: str | None = None
    body_regex: str | None = None

    @field_validator("body_regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"a valid regular expression ({exc})") from None
        return value


class TcpCheck(CheckBase):
    """A TCP connect to each host of the layer; host and port are templates."""

    type: Literal["tcp"]
    port: Annotated[str, Field(min_length=1, max_length=256)] | Annotated[int, Field(ge=1, le=65535)]
    host: Annotated[str, Field(min_length=1, max_length=256)] = "{{ host.address }}"


class PlaybookCheck(CheckBase):
    """An Ansible verify playbook from ``playbooks/``, run against the layer's hosts."""

    type: Literal["playbook"]
    playbook: RelPath


Check = Annotated[CommandCheck | HttpCheck | TcpCheck | PlaybookCheck, Field(discriminator="type")]


class CommandStep(Model):
    """A shell command run in the layer's folder on every host of the layer."""

    command: Annotated[str, Field(min_length=1, max_length=4096)]
    timeout: Duration = 60.0


class PlaybookStep(Model):
    """An Ansible playbook from ``playbooks/`` run against the plant's inventory."""

    playbook: RelPath
    timeout: Duration = 600.0


Step = CommandStep | PlaybookStep
