"""``notify:`` of ``rollout.yaml``: webhooks told of the moments a person should know about.

A webhook's URL and headers often hold secrets (a Slack URL's path is its token, a header an
API key): a refusal names the place and what is expected but never shows a header's value or
a URL's user and password, and neither is in a model's ``repr``.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, get_args
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, field_validator
from pydantic_core import PydanticCustomError

from rollout.config.models.common import Duration, Model, Name

NotifyEvent = Literal["approval_needed", "rolled_back", "needs_attention", "halted", "aborted", "finished"]
NOTIFY_EVENTS: tuple[NotifyEvent, ...] = get_args(NotifyEvent)
"""What a webhook may be told of: a wave waits for approval, a plant was rolled back or needs a
person, a rollout halted, was aborted or finished."""

HIDDEN = "hidden_value"
"""The pydantic error type whose input must not be shown (``validation._problem`` keeps it out)."""

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}$")
"""An HTTP header name (RFC 9110's token)."""
_RESERVED = frozenset({"content-length", "host", "transfer-encoding", "connection"})
"""Headers the HTTP client sets itself: another value would break the request."""
MAX_HEADER_VALUE = 16384


def shown_url(url: str) -> str:
    """``url`` as it may be printed: a user and password in it replaced by ``***``."""
    head, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    return f"{head}{sep}{authority}{slash}{path}"


def _hidden(message: str, found: str = "") -> PydanticCustomError:
    return PydanticCustomError(HIDDEN, message, {"found": found})


def _http_url(value: object) -> str:
    if not isinstance(value, str):
        raise _hidden("an http:// or https:// URL", type(value).__name__)
    shown = repr(shown_url(value))[:80]
    if not value or len(value) > 2048 or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        raise _hidden("an http:// or https:// URL of at most 2048 characters, without spaces", shown)
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (a port out of range raises here)
    except ValueError:
        raise _hidden("an http:// or https:// URL with a valid host and port", shown) from None
    if parts.scheme not in ("http", "https"):
        raise _hidden("an http:// or https:// URL (webhooks are POSTed over HTTP)", shown)
    if not parts.hostname:
        raise _hidden("an http:// or https:// URL with a host", shown)
    return value


def _headers(value: object) -> dict[str, str]:
    """Header names are shown when refused, their values never (nor their type)."""
    if not isinstance(value, dict):
        raise _hidden("a mapping of header names to values", type(value).__name__)
    for name, text in value.items():
        if not isinstance(name, str) or not _TOKEN.match(name):
            raise _hidden("header names of letters, digits and !#$%&'*+-.^_`|~", repr(str(name))[:80])
        if name.lower() in _RESERVED:
            raise _hidden(f"no header {name!r}: the HTTP client sets it", repr(name))
        if not isinstance(text, str) or len(text) > MAX_HEADER_VALUE:
            raise _hidden(f"header {name!r}: a string of at most {MAX_HEADER_VALUE} characters (value not shown)")
        if any(not (" " <= c <= "~" or c == "\t") for c in text):
            raise _hidden(f"header {name!r}: printable ASCII, without line breaks (value not shown)")
    return dict(value)


def _bounded_timeout(seconds: float) -> float:
    if not 0.1 <= seconds <= 60.0:
        raise ValueError("a duration between 100ms and 60s")
    return seconds


Timeout = Annotated[Duration, AfterValidator(_bounded_timeout)]
"""A webhook waits at most a minute for each phase of a POST: deliveries are retried anyway."""


class Webhook(Model):
    """One receiver: where to POST, in which body format, for which events."""

    name: Name
    """How deliveries and messages name it (the URL may be secret)."""
    url: Annotated[str, BeforeValidator(_http_url), Field(repr=False)]
    format: Literal["json", "slack", "teams"] = "json"
    """``json``: rollout's own body; ``slack``: ``{"text": ...}``; ``teams``: a MessageCard."""
    events: Annotated[list[NotifyEvent], Field(min_length=1)] = list(NOTIFY_EVENTS)
    timeout: Timeout = 5.0
    """Seconds each phase of one attempt (connect, send, wait for the answer) may take."""
    headers: Annotated[dict[str, str], BeforeValidator(_headers), Field(repr=False)] = {}
    """Sent with every POST (an ``Authorization``, say); never printed, never stored in the state."""

    @field_validator("events")
    @classmethod
    def _once_each(cls, events: list[NotifyEvent]) -> list[NotifyEvent]:
        return list(dict.fromkeys(events))

    def wants(self, kind: str) -> bool:
        return kind in self.events
