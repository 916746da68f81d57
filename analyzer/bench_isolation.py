"""`hpcmind bench isolation`: one slow part must not stall the rest.

1. A Prometheus that answers after 30 s: 20 incidents on 20 nodes, each its own payload; time until all 20 are
   diagnosed (the breaker skips Prometheus after the first timeout; the missing evidence is marked). Target 30 s.
2. A 100,000-alert payload, then one urgent alert: time from the urgent POST to its diagnosis, while the storm is
   still being recorded by another worker. Target 10 s.
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
from tqdm import tqdm

from hpcmind.bench_results import write_results

from .bench import _alert, _payload, serving

SLOW_S = 30.0
TARGET_SLOW_S = 30.0
TARGET_URGENT_S = 10.0


class SlowPrometheus:
    """query_range answered (no series) after `delay` seconds, or, for queries naming `hold`, when released."""

    def __init__(self, delay: float = 0.0, hold: str = "") -> None:
        self.delay, self.hold = delay, hold
        self.release = threading.Event()
        self.queries: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                q = parse_qs(urlparse(self.path).query).get("query", [""])[0]
                outer.queries.append(q)
                if outer.hold and outer.hold in q:
                    outer.release.wait(120)
                elif outer.delay:
                    outer.release.wait(outer.delay)
                body = json.dumps({"status": "success", "data": {"resultType": "matrix", "result": []}}).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (its timeout)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def _diagnosed(c: httpx.Client) -> dict[str, Any]:
    items = c.get("/api/v1/incidents", params={"limit": 500}).json()["items"]
    return {i["culprit"].get("node", ""): i for i in items if i["root_cause"]}


def slow_prometheus(incidents: int = 20) -> dict[str, Any]:
    prom = SlowPrometheus(delay=SLOW_S)
    try:
        with tempfile.TemporaryDirectory() as d, serving(d, HPCMIND_ANALYZER__PROMETHEUS_URL=prom.url) as c:
            t0 = time.perf_counter()
            for n in range(incidents):
                a = _alert(n, 0, "GPUXidError")
                a["labels"] |= {"err_code": "79", "job_id": ""}
                assert c.post("/api/v1/alertmanager", json=_payload([a])).status_code == 200
            deadline = time.monotonic() + 600
            with tqdm(total=incidents, desc="diagnosed (slow Prometheus)", file=sys.stderr) as bar:
                while time.monotonic() < deadline:
                    got = len(_diagnosed(c))
                    bar.update(got - bar.n)
                    if got >= incidents:
                        break
                    time.sleep(0.2)
            took = time.perf_counter() - t0
            got = len(_diagnosed(c))
            metrics = [ln for ln in c.get("/metrics").text.splitlines() if ln.startswith("hpcmind_prometheus_breaker")]
    finally:
        prom.close()
    return {
        "incidents": incidents,
        "diagnosed": got,
        "all_diagnosed_s": round(took, 1),
        "prometheus_queries": len(prom.queries),
        "breaker_metrics": metrics,
    }


def storm_then_urgent(storm: int = 100_000) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as d, serving(d, HPCMIND_ANALYZER__MAX_BODY_BYTES=str(256 * 1024 * 1024)) as c:
        alerts = [_alert(n // 10, n % 10, "GPUXidError") for n in range(storm)]
        body = json.dumps(_payload(alerts)).encode()
        t0 = time.perf_counter()
        r = c.post("/api/v1/alertmanager", content=body, headers={"Content-Type": "application/json"})
        storm_ack_s = time.perf_counter() - t0
        assert r.status_code == 200, r.text[:200]
        urgent = _alert(99_999, 0, "HostOOMKill")
        urgent["labels"] |= {"Hostname": "urgent-node", "instance": "urgent-node:9100"}
        t1 = time.perf_counter()
        assert c.post("/api/v1/alertmanager", json=_payload([urgent])).status_code == 200
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not _urgent_done(c):
            time.sleep(0.1)
        urgent_s = time.perf_counter() - t1
        stored = c.get("/api/v1/incidents", params={"limit": 1}).json()["total"]
    return {
        "storm_alerts": storm,
        "storm_body_mb": round(len(body) / 1e6, 1),
        "storm_ack_s": round(storm_ack_s, 2),
        "urgent_diagnosed_s": round(urgent_s, 2),
        "incidents_when_urgent_done": stored,
    }


def _urgent_done(c: httpx.Client) -> bool:
    items = c.get("/api/v1/incidents", params={"node": "urgent-node"}).json()["items"]
    return any(i["root_cause"] for i in items)


def run(out_dir: Path) -> dict[str, Any]:
    slow = slow_prometheus()
    urgent = storm_then_urgent()
    result: dict[str, Any] = {
        "benchmark": "isolation",
        "slow_prometheus": slow,
        "storm_then_urgent": urgent,
        "target": f"{slow['incidents']} incidents diagnosed within {TARGET_SLOW_S:.0f} s with Prometheus answering "
        f"after {SLOW_S:.0f} s; an urgent alert after a {urgent['storm_alerts']}-alert payload diagnosed within "
        f"{TARGET_URGENT_S:.0f} s",
    }
    result["met"] = (
        slow["diagnosed"] == slow["incidents"]
        and slow["all_diagnosed_s"] <= TARGET_SLOW_S
        and urgent["urgent_diagnosed_s"] <= TARGET_URGENT_S
    )
    write_results(out_dir, "isolation", result, markdown(result))
    return result


def markdown(r: dict[str, Any]) -> str:
    s, u = r["slow_prometheus"], r["storm_then_urgent"]
    return "\n".join(
        [
            "# Isolation benchmark",
            "",
            f"Target: {r['target']} — {'met' if r['met'] else 'NOT met'}.",
            "",
            "| measure | value |",
            "|---|---|",
            f"| slow Prometheus ({SLOW_S:.0f} s): incidents diagnosed / sent | {s['diagnosed']} / {s['incidents']} |",
            f"| slow Prometheus: all diagnosed after (s) | {s['all_diagnosed_s']:.1f} |",
            f"| slow Prometheus: queries that reached it | {s['prometheus_queries']} |",
            f"| storm: alerts / body (MB) / acknowledged after (s) | {u['storm_alerts']} / {u['storm_body_mb']} / "
            f"{u['storm_ack_s']:.1f} |",
            f"| urgent alert sent after the storm: diagnosed after (s) | {u['urgent_diagnosed_s']:.1f} |",
            "",
        ]
    )
