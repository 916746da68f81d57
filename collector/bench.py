"""`hpcmind bench collector`: scrape latency and exposition size, ours versus a naive labelled-Gauge exporter.

Both serve the same simulator state over real HTTP on loopback in the same run. The naive exporter is what
people write first: one `Gauge` per family with `labelnames`, `.labels(...).set()` per series, prometheus_client's
own `/metrics` handler. Only the scrape is timed (the naive side's `.set()` calls happen once, before).
"""

from __future__ import annotations

import http.client
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Gauge, make_wsgi_app
from tqdm import tqdm

from hpcmind.bench_results import percentile, write_results
from simulator.bench import scenario
from simulator.scenario import parse_scenario

from .guard import GuardedCollector
from .server import MetricsServer
from .sources.simulator import SimulatorSource

SIZES = (128, 1024)  # nodes x 8 GPUs: 1,024 and 8,192 GPUs
TARGET_P99_MS = 250.0
TARGET_FACTOR = 5.0


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def _source(nodes: int) -> SimulatorSource:
    src = SimulatorSource(parse_scenario(scenario(nodes)))
    src.advance()
    return src


def _naive_registry(src: SimulatorSource) -> CollectorRegistry:
    reg = CollectorRegistry()
    gauges: dict[str, Gauge] = {}
    strings = src.samples.labels.strings
    blocks = src.snapshot()
    for b in blocks:
        if b.name.endswith(("_bucket", "_sum", "_count")):
            continue  # histograms are not gauges; leave them out of both sides' comparison counts
        for lid, v in zip(b.label_ids.tolist(), b.values.tolist(), strict=True):
            labels = json.loads(strings[lid])
            key = b.name + "|" + ",".join(sorted(labels))
            g = gauges.get(key)
            if g is None:
                safe = b.name.replace(":", "_")
                g = gauges[key] = Gauge(
                    safe if safe not in {k.split("|")[0] for k in gauges} else f"{safe}_{len(gauges)}",
                    "naive",
                    sorted(labels),
                    registry=reg,
                )
            (g.labels(**labels) if labels else g).set(v)
    return reg


def _scrape(port: int, n: int) -> tuple[list[float], int]:
    """GET /metrics n times on one keep-alive connection (what a Prometheus scraper does)."""
    lat, size = [], 0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        for i in range(n + 1):
            t0 = time.perf_counter()
            conn.request("GET", "/metrics")
            body = conn.getresponse().read()
            if i:  # the first scrape warms up
                lat.append((time.perf_counter() - t0) * 1000)
            size = len(body)
    finally:
        conn.close()
    return lat, size


def _latency(lat: list[float], size: int) -> dict[str, Any]:
    return {
        "p50_ms": round(percentile(lat, 0.5), 1),
        "p99_ms": round(percentile(lat, 0.99), 1),
        "mean_ms": round(statistics.fmean(lat), 1),
        "bytes": size,
        "scrapes": len(lat),
    }


def run(out_dir: Path, sizes: tuple[int, ...] = SIZES, scrapes: int = 50, naive_scrapes: int = 5) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for nodes in tqdm(sizes, desc="bench collector", unit="size", file=sys.stderr):
        src = _source(nodes)
        t0 = time.perf_counter()
        src.advance()  # one tick: step + snapshot + render, off the scrape path
        tick_ms = (time.perf_counter() - t0) * 1000
        ours = MetricsServer(GuardedCollector([src]).collect, port=0)
        ours.start()
        lat, size = _scrape(ours.port, scrapes)
        ours.stop()
        reg = _naive_registry(src)
        httpd: WSGIServer = make_server("127.0.0.1", 0, make_wsgi_app(reg), handler_class=_Quiet)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        nlat, nsize = _scrape(httpd.server_port, naive_scrapes)
        httpd.shutdown()
        httpd.server_close()
        rows.append(
            {
                "nodes": nodes,
                "gpus": nodes * 8,
                "ours": {**_latency(lat, size), "render_per_tick_ms": round(tick_ms, 1)},
                "naive": _latency(nlat, nsize),
            }
        )
        rows[-1]["speedup_p50"] = round(rows[-1]["naive"]["p50_ms"] / rows[-1]["ours"]["p50_ms"], 1)
    big = max(rows, key=lambda r: r["gpus"])
    result = {
        "benchmark": "collector",
        "target": f"p99 <= {TARGET_P99_MS:.0f} ms at {big['gpus']} GPUs and "
        f">= {TARGET_FACTOR:.0f}x faster than the naive exporter",
        "met": big["ours"]["p99_ms"] <= TARGET_P99_MS and big["speedup_p50"] >= TARGET_FACTOR,
        "results": rows,
    }
    write_results(out_dir, "collector", result, markdown(result))
    return result


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Collector benchmark",
        "",
        f"Target: {result['target']} — {'met' if result['met'] else 'NOT met'}.",
        "",
        "| GPUs | ours p50 / p99 ms | naive p50 / p99 ms | speed-up (p50) | ours MB | naive MB |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["results"]:
        o, n = r["ours"], r["naive"]
        lines.append(
            f"| {r['gpus']} | {o['p50_ms']:.0f} / {o['p99_ms']:.0f} | {n['p50_ms']:.0f} / {n['p99_ms']:.0f} "
            f"| {r['speedup_p50']:.1f}x | {o['bytes'] / 1e6:.1f} | {n['bytes'] / 1e6:.1f} |"
        )
    lines += [
        "",
        "Ours renders the exposition once per simulator tick (state changes only then, as with dcgm-exporter's "
        "collect interval); a tick including the render took "
        + ", ".join(f"{r['ours']['render_per_tick_ms']:.0f} ms at {r['gpus']} GPUs" for r in result["results"])
        + ". The naive exporter carries no histograms (gauges only), so its exposition is slightly smaller.",
    ]
    return "\n".join(lines) + "\n"
