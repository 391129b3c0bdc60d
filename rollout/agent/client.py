"""The agent's side of ``/api/v1/agent``: one HTTP client connecting out to the centre.

A link that fails (no route, refused, timed out, a 5xx) is ``LinkDown``: the agent keeps working
and tries again. A refusal (401, 403) is ``Refused``: the token is wrong, revoked or for another
plant, which no retry mends."""

from __future__ import annotations

import ssl
from typing import Any

import httpx

from rollout.agent.settings import AgentSettings
from rollout.errors import RolloutError

VERSION = "1"


class LinkDown(RolloutError):
    """The centre cannot be reached now."""


class Refused(RolloutError):
    """The centre refuses this agent's token for what it asked."""


class Untrusted(RolloutError):
    """The centre's TLS certificate is not one this agent trusts (``--ca-file``): no retry mends it."""


class Centre:
    def __init__(self, settings: AgentSettings, timeout: float = 10.0) -> None:
        self.settings = settings
        verify: ssl.SSLContext | bool = True
        if settings.ca_file is not None:
            verify = ssl.create_default_context(cafile=str(settings.ca_file))
        self._http = httpx.Client(
            base_url=f"{settings.server}/api/v1/agent",
            headers={"Authorization": f"Bearer {settings.token}", "User-Agent": f"rollout-agent/{VERSION}"},
            timeout=httpx.Timeout(timeout, read=settings.poll_s + timeout),
            verify=verify,
            trust_env=False,  # a plant node's proxy settings must not reroute the link to the centre
        )

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                raise Untrusted(f"{self.settings.server}: its certificate is not trusted: {exc}") from None
            raise LinkDown(f"{self.settings.server}: {type(exc).__name__}: {exc}") from None
        if response.status_code in (401, 403):
            raise Refused(f"{self.settings.server} refused {path}: {_message(response)}")
        if response.status_code >= 500:
            raise LinkDown(f"{self.settings.server}: {response.status_code} {_message(response)}")
        if response.status_code >= 400:
            raise RolloutError(
                f"{self.settings.server} answered {response.status_code} to {path}: {_message(response)}"
            )
        return response

    def me(self) -> dict[str, Any]:
        found: dict[str, Any] = self._call("GET", "/me").json()
        return found

    def next_order(self) -> dict[str, Any] | None:
        response = self._call("GET", "/orders/next", params={"wait": self.settings.poll_s})
        if response.status_code == 204:
            return None
        found: dict[str, Any] = response.json()
        return found

    def take(self, order_id: str) -> str:
        return str(self._call("POST", f"/orders/{order_id}/take").json().get("state", ""))

    def blob(self, digest: str) -> bytes:
        return self._call("GET", f"/blobs/{digest}").content

    def send_events(self, order_id: str, events: list[tuple[int, dict[str, Any]]]) -> int:
        body = {"events": [{"seq": seq, "event": event} for seq, event in events]}
        return int(self._call("POST", f"/orders/{order_id}/events", json=body).json()["stored_through"])

    def send_result(self, order_id: str, last_seq: int, result: dict[str, Any]) -> None:
        self._call("POST", f"/orders/{order_id}/result", json={"last_seq": last_seq, "result": result})

    def beat(self, detail: dict[str, object]) -> None:
        self._call("POST", "/heartbeat", json={"detail": detail})


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]
