"""How the console prints numbers and times: one place, registered as Jinja filters."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any


def age(ts: float | None, now: float | None = None) -> str:
    """``3d 4h``, ``2h 5m``, ``7m``: enough to tell what waited longest."""
    if ts is None:
        return "–"
    s = max(0, int((now if now is not None else time.time()) - ts))
    d, h, m = s // 86_400, s % 86_400 // 3600, s % 3600 // 60
    if d:
        return f"{d}d {h}h"
    return f"{h}h {m}m" if h else f"{m}m"


def stamp(ts: float | None) -> str:
    return "–" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def number(value: Any, kind: str) -> str:
    if value is None:
        return "–"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "usd":
        return f"${value:,.4f}"
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "ms":
        return f"{value / 1000:.1f} s" if value >= 1000 else f"{value:.0f} ms"
    return str(value)


FILTERS = {"age": age, "stamp": stamp, "number": number}
