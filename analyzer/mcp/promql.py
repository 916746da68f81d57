"""Read-only PromQL for assistants: times and bounds checked before Prometheus is asked, its errors passed on.

Pure parsing (`parse_time`, `parse_duration`, `check_range`) is separate from the one HTTP call (`query`), so
the bounds are tested without a server and the call is tested against the real one.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
MAX_QUERY_CHARS = 4000


class QueryRefused(ValueError):
    """The request is outside the bounds or malformed; the message names the argument."""


def parse_duration(arg: str, value: str) -> timedelta:
    """A Prometheus duration (`90s`, `15m`, `2h`, `1d`); bare numbers are seconds."""
    v = value.strip()
    try:
        secs = float(v)
    except ValueError:
        m = _DURATION.match(v)
        if not m:
            raise QueryRefused(f"{arg}: {value!r} is not a duration like 30s, 15m, 2h or 1d") from None
        secs = float(m.group(1)) * _UNIT_S[m.group(2)]
    if not math.isfinite(secs) or secs <= 0:
        raise QueryRefused(f"{arg}: must be a positive duration, got {value!r}")
    return timedelta(seconds=secs)


def parse_time(arg: str, value: str | None, now: datetime) -> datetime:
    """RFC 3339, a Unix timestamp, `now`, or `now-<duration>` / `-<duration>` (relative to now)."""
    if value is None or value.strip() in ("", "now"):
        return now
    v = value.strip()
    rel = v[4:] if v.startswith("now-") else v[1:] if v.startswith("-") else None
    if rel is not None:
        return now - parse_duration(arg, rel)
    try:
        return datetime.fromtimestamp(float(v), UTC)
    except (ValueError, OverflowError):
        pass
    try:
        t = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise QueryRefused(f"{arg}: {value!r} is not RFC 3339, a Unix time, 'now' or 'now-1h'") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Bounds:
    max_range: timedelta
    max_points: int
    max_series: int


@dataclass(frozen=True)
class RangeRequest:
    start: datetime
    end: datetime
    step: timedelta


def check_range(start: datetime, end: datetime, step: timedelta | None, bounds: Bounds) -> RangeRequest:
    """A range within the bounds; without a step, the finest one that keeps under `max_points`."""
    if end <= start:
        raise QueryRefused("start: must be before end")
    width = end - start
    if width > bounds.max_range:
        hours = bounds.max_range.total_seconds() / 3600
        raise QueryRefused(f"start: the range is {width}, wider than the {hours:g} h this server allows")
    if step is None:
        step = timedelta(seconds=max(1.0, math.ceil(width.total_seconds() / (bounds.max_points - 1))))
    points = int(width / step) + 1
    if points > bounds.max_points:
        raise QueryRefused(
            f"step: {step.total_seconds():g}s over {width} is {points} points per series; "
            f"the limit is {bounds.max_points} (use a step of at least "
            f"{math.ceil(width.total_seconds() / (bounds.max_points - 1))}s)"
        )
    return RangeRequest(start, end, step)


def check_query(query: str) -> str:
    q = query.strip()
    if not q:
        raise QueryRefused("query: empty PromQL expression")
    if len(q) > MAX_QUERY_CHARS:
        raise QueryRefused(f"query: {len(q)} characters; the limit is {MAX_QUERY_CHARS}")
    return q


def query(
    prom_url: str, q: str, rng: RangeRequest | None, at: datetime, bounds: Bounds, timeout: float = 10.0
) -> dict[str, Any]:
    """Ask Prometheus; its own error text (bad PromQL, timeouts) comes back as QueryRefused."""
    params: dict[str, str | float]
    if rng is None:
        path, params = "/api/v1/query", {"query": q, "time": at.timestamp()}
    else:
        path = "/api/v1/query_range"
        params = {
            "query": q,
            "start": rng.start.timestamp(),
            "end": rng.end.timestamp(),
            "step": rng.step.total_seconds(),
        }
    try:
        r = httpx.get(prom_url + path, params=params, timeout=timeout)
    except httpx.HTTPError as exc:
        raise QueryRefused(f"prometheus at {prom_url} did not answer: {exc}") from None
    try:
        body = r.json()
    except ValueError:
        raise QueryRefused(f"prometheus answered HTTP {r.status_code} without JSON: {r.text[:200]}") from None
    if body.get("status") != "success":
        raise QueryRefused(f"query: prometheus refused it ({body.get('errorType', 'error')}): {body.get('error', '')}")
    data = body["data"]
    result = data.get("result")
    kind = data.get("resultType", "")
    series = result if isinstance(result, list) else [result]
    out: dict[str, Any] = {"result_type": kind, "series": len(series), "truncated": False}
    if kind in ("vector", "matrix") and len(series) > bounds.max_series:
        series, out["truncated"] = series[: bounds.max_series], True
    out["result"] = series
    if rng is not None:
        out["step_seconds"] = rng.step.total_seconds()
    return out
