"""Metric-window charts on the incident page: which series are drawn, in what units, and that they stay in the box."""

from __future__ import annotations

import math
import re

import pytest

from analyzer.evidence.gather import SAMPLE_SERIES, chart_samples, downsample
from analyzer.pages.charts import HEIGHT, MAX_CHARTS, MAX_LINES, WIDTH, charts, fmt

pytestmark = pytest.mark.unit


def _series(name: str, ys: list[float], **labels: str) -> dict:
    return {"name": name, "labels": labels, "values": [[1795255200.0 + 15 * i, y] for i, y in enumerate(ys)]}


def test_only_series_that_moved_are_drawn_largest_change_first() -> None:
    ev = [
        {
            "name": "gpu_activity",
            "samples": [
                _series("DCGM_FI_DEV_GPU_UTIL", [97, 98, 97, 3, 0], gpu="3"),
                _series("DCGM_FI_DEV_GPU_UTIL", [95, 96, 95, 95, 96], gpu="1"),
                _series("DCGM_FI_DEV_FB_USED", [100.0] * 5, gpu="3"),  # flat: nothing to see
            ],
        },
        {"name": "host", "samples": [_series("node_memory_MemAvailable_bytes", [8e9, 7e9, 6e9, 6.1e9, 6e9])]},
    ]
    cs = charts(ev)
    assert [c.title for c in cs] == ["DCGM_FI_DEV_GPU_UTIL", "node_memory_MemAvailable_bytes"]
    util = cs[0]
    assert [ln.label for ln in util.lines] == ["gpu=3", "gpu=1"]  # the GPU that fell first
    assert util.lo == "0 %" and util.hi == "98 %" and util.lines[0].last == "0 %"
    assert cs[1].hi.endswith("GiB")
    for c in cs:
        for ln in c.lines:
            xy = [tuple(map(float, p.split(","))) for p in ln.points.split()]
            assert len(xy) == 5
            assert all(0 <= x <= WIDTH and 0 <= y <= HEIGHT for x, y in xy)
    # the lowest value sits at the bottom of the plot, the highest at its top
    ys = [float(p.split(",")[1]) for p in util.lines[0].points.split()]
    assert ys[-1] == max(ys) and min(ys) < HEIGHT / 2


def test_limits_and_empty_input() -> None:
    assert charts([]) == [] and charts([{"name": "logs"}]) == []
    many = [{"name": "q", "samples": [_series(f"m{i}", [0, i + 1], gpu=str(g)) for i in range(9) for g in range(6)]}]
    cs = charts(many)
    assert len(cs) == MAX_CHARTS and all(len(c.lines) == MAX_LINES for c in cs)


@pytest.mark.parametrize(
    ("name", "v", "want"),
    [
        ("DCGM_FI_DEV_GPU_TEMP", 91.4, "91 °C"),
        ("DCGM_FI_DEV_FB_USED", 1024.0, "1 GiB"),
        ("vllm:kv_cache_usage_perc", 0.97, "97 %"),
        ("DCGM_FI_PROF_SM_ACTIVE", 0.5, "50 %"),
        ("node_vmstat_oom_kill", 3.0, "3"),
        ("x", math.nan, "NaN"),
    ],
)
def test_values_in_the_unit_the_name_says(name: str, v: float, want: str) -> None:
    assert fmt(name, v) == want


def test_downsample_keeps_the_last_point_and_drops_what_json_cannot_hold() -> None:
    vals = [[float(i), float(i)] for i in range(1000)]
    out = downsample(vals, 120)
    assert len(out) <= 121 and out[-1] == [999.0, 999.0] and out[0] == [0.0, 0.0]
    assert downsample([[0.0, math.nan], [1.0, 2.0]], 120) == [[1.0, 2.0]]


def test_a_finding_is_charted_even_beside_busier_series() -> None:
    # a host with three OOM kills before the window: one more is a 25 % step, less than pressure counters move
    ts = [float(t) for t in range(0, 600, 15)]
    busy = [
        {"name": f"node_pressure_{k}_seconds_total", "labels": {"instance": "n1:9100"},
         "values": [[t, 1.0 + t * (i + 1)] for t in ts]}
        for i, k in enumerate(["cpu_waiting", "io_waiting", "io_stalled", "memory_waiting", "irq_stalled"] * 2)
    ]  # fmt: skip
    oom = {"name": "node_vmstat_oom_kill", "labels": {"instance": "n1:9100"},
           "values": [[t, 3.0 if t < 300 else 4.0] for t in ts]}  # fmt: skip
    out = chart_samples([*busy, oom])
    assert len(out) == SAMPLE_SERIES and out[0]["name"] == "node_vmstat_oom_kill"
    flat = {**oom, "values": [[t, 3.0] for t in ts]}  # no kill in the window: nothing to show
    assert "node_vmstat_oom_kill" not in [s["name"] for s in chart_samples([*busy, flat])]


def test_the_incident_page_draws_the_charts() -> None:
    from pathlib import Path

    from jinja2 import Environment, FileSystemLoader, select_autoescape

    from analyzer.pages.views import incident_view
    from hpcmind.settings import LinksSettings

    inc = {
        "id": 7, "state": "open", "root_cause": "gpu_thermal", "onset": "2026-11-19T10:00:00+00:00",
        "evidence": [{"name": "gpu_thermal", "query": "q", "status": "success",
                      "samples": [_series("DCGM_FI_DEV_GPU_TEMP", [60, 75, 92], gpu="2", Hostname="n1")]}],
    }  # fmt: skip
    links = LinksSettings(grafana="http://g", prometheus="http://p", alertmanager="http://a")
    env = Environment(loader=FileSystemLoader(Path("analyzer/pages/templates")), autoescape=select_autoescape(["html"]))
    html = env.get_template("incident.html").render(i=incident_view(inc, links))
    assert "<h2>Metric windows</h2>" in html and len(re.findall(r"<polyline ", html)) == 1
    assert "92 °C" in html and "gpu=2" in html and "samples" not in html
