"""The console's Jinja2 templates (autoescaped) and the filters they use."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from fastapi.templating import Jinja2Templates

from rollout.service.console import local_and_utc

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")


def _utc(stamp: float | None) -> str:
    if stamp is None:
        return "never"
    return dt.datetime.fromtimestamp(stamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _css(condition: str) -> str:
    """The class that colours a condition; the condition is always written out beside it."""
    return "c-" + condition.replace(" ", "-").replace("_", "-")


templates.env.filters["local"] = local_and_utc
templates.env.filters["utc"] = _utc
templates.env.filters["css"] = _css
templates.env.filters["words"] = lambda text: str(text or "").replace("_", " ")
