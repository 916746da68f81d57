"""Small line charts of the metric windows an incident was diagnosed from (pure: numbers in, coordinates out).

The page template draws them as inline SVG, so a browser with no internet shows them and nothing loads from a CDN.
Which series: those that moved in the window (a flat line says nothing), the largest relative change first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from analyzer.evidence.gather import movement
from analyzer.rca.units import human_bytes

WIDTH, HEIGHT, PAD_L, PAD_B, PAD_T = 360, 110, 4, 16, 6
MAX_CHARTS = 6
MAX_LINES = 4
COLOURS = ("#1f6feb", "#d1242f", "#1a7f37", "#9a6700")
IDENTIFYING = ("gpu", "device", "port", "mountpoint", "job_id", "hpc_job", "instance")


@dataclass
class Line:
    label: str
    points: str  # SVG polyline "x,y x,y ..."
    colour: str
    last: str  # the last value in human units


@dataclass
class Chart:
    title: str
    lo: str
    hi: str
    start: str
    end: str
    lines: list[Line] = field(default_factory=list)
    width: int = WIDTH
    height: int = HEIGHT


def fmt(name: str, v: float) -> str:
    """A value in the unit its metric name says (bytes, MiB framebuffer, °C, %)."""
    if math.isnan(v):
        return "NaN"
    if name.endswith("_bytes"):
        return human_bytes(v)
    if name.startswith("DCGM_FI_DEV_FB_"):  # dcgm-exporter reports framebuffer in MiB
        return human_bytes(v * 1024 * 1024)
    if name.endswith("_TEMP") or name.endswith("_celsius"):
        return f"{v:.0f} °C"
    if name.endswith("_UTIL"):  # 0..100
        return f"{v:.0f} %"
    if name.endswith("_perc") or name.startswith("DCGM_FI_PROF_"):  # ratios 0..1
        return f"{v * 100:.0f} %"
    return f"{v:.4g}"


def _label(labels: dict[str, str]) -> str:
    parts = [f"{k}={labels[k]}" for k in IDENTIFYING if labels.get(k)]
    return ", ".join(parts[:2]) or "series"


def _hhmm(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M")


def charts(evidence: list[dict[str, Any]]) -> list[Chart]:
    """One chart per metric name that moved, from the evidence items' `samples`."""
    by_name: dict[str, list[tuple[float, dict[str, Any]]]] = {}  # each series with how far it moved
    for item in evidence:
        for s in item.get("samples") or []:
            if (m := movement(s.get("values") or [])) > 0:
                by_name.setdefault(s["name"], []).append((m, s))
    ranked = sorted(by_name.items(), key=lambda kv: -max(m for m, _ in kv[1]))
    out = []
    for name, moved in ranked[:MAX_CHARTS]:
        series = [s for _, s in sorted(moved, key=lambda ms: -ms[0])[:MAX_LINES]]
        pts = [(t, v) for s in series for t, v in s["values"] if not math.isnan(v)]
        t0, t1 = min(t for t, _ in pts), max(t for t, _ in pts)
        lo, hi = min(v for _, v in pts), max(v for _, v in pts)
        sx = (WIDTH - PAD_L * 2) / ((t1 - t0) or 1.0)
        sy = (HEIGHT - PAD_B - PAD_T) / ((hi - lo) or 1.0)
        chart = Chart(name, fmt(name, lo), fmt(name, hi), _hhmm(t0), _hhmm(t1))
        for i, s in enumerate(series):
            xy = [
                f"{PAD_L + (t - t0) * sx:.1f},{HEIGHT - PAD_B - (v - lo) * sy:.1f}"
                for t, v in s["values"]
                if not math.isnan(v)
            ]
            last = next((v for _, v in reversed(s["values"]) if not math.isnan(v)), math.nan)
            chart.lines.append(
                Line(_label(s.get("labels") or {}), " ".join(xy), COLOURS[i % len(COLOURS)], fmt(name, last))
            )
        out.append(chart)
    return out
