"""`hpcmind bench analyzer`: webhook ack latency, and the time to fully process a burst of 10,000 alerts.

The analyzer runs as `hpcmind serve` in its own process (SQLite store, Prometheus unreachable so evidence
gathering fails fast and is recorded as missing). The burst is 1,000 nodes' cascades of 10 alerts each, sent the
way Alertmanager sends them (groups of alerts per POST); "processed" means every alert is stored on an incident.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from hpcmind.bench_results import write_results

TOKEN = "bench-token"
ALERTS = (
    "GPUXidError",
    "GPUMissing",
    "JobGPUsIdle",
    "SlurmJobFailed",
    "InfiniBandPortDown",
    "HostOOMKill",
    "GPUThermalThrottling",
    "FilesystemFull",
    "NodeDown",
    "GPUNVLinkErrors",
)
TARGET_ACK_P99_MS = 20.0
TARGET_BURST_S = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _alert(node: int, i: int, name: str) -> dict[str, Any]:
    return {
        "status": "firing",
        "labels": {
            "alertname": name,
            "cluster": "bench",
            "Hostname": f"n{node:05d}",
            "gpu": str(i % 8),
            "job_id": str(100000 + node),
            "severity": "critical",
        },
        "annotations": {"summary": f"{name} on n{node:05d}"},
        "startsAt": "2026-11-21T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": f"{node:05d}{i:02d}",
    }


def _payload(alerts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"version": "4", "status": "firing", "receiver": "hpcmind-analyzer", "groupKey": "bench", "alerts": alerts}


@contextmanager
def serving(db_dir: str, **env_extra: str) -> Iterator[httpx.Client]:
    """`hpcmind serve` in its own process (SQLite in `db_dir`, signatures engine, nothing else reachable unless
    `env_extra` says so), ready; a client with the token."""
    port = _free_port()
    env = {
        **os.environ,
        "HPCMIND_ANALYZER__PORT": str(port),
        "HPCMIND_ANALYZER__API_TOKEN": TOKEN,
        "HPCMIND_ANALYZER__DATABASE_URL": f"sqlite:///{db_dir}/bench.db",
        "HPCMIND_ANALYZER__PROMETHEUS_URL": "http://127.0.0.1:9",
        "HPCMIND_ANALYZER__QUEUE_SIZE": "100000",
        "HPCMIND_ANALYZER__GRAFANA_URL": "http://127.0.0.1:9",
        # the pipeline's own throughput; the model's cost per diagnosis is measured by `bench rca`
        "HPCMIND_MODEL__ENGINE": "signatures",
        **env_extra,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpcmind", "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120
        ) as c:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if c.get("/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            yield c
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)


def run(out_dir: Path, nodes: int = 1000, per_node: int = 10, acks: int = 300) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as d:
        with serving(d) as c:
            # 1) ack latency: one alert per POST, one at a time
            lat = []
            for i in tqdm(range(acks), desc="ack latency", file=sys.stderr):
                t0 = time.perf_counter()
                r = c.post("/api/v1/alertmanager", json=_payload([_alert(90000 + i, 0, "GPUXidError")]))
                lat.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200, r.text
            while c.get("/healthz").json()["queue"]:
                time.sleep(0.1)
            # 2) the burst: each node's cascade as one notification, 10 alerts each
            t0 = time.perf_counter()
            codes: dict[int, int] = {}
            for n in tqdm(range(nodes), desc="burst", file=sys.stderr):
                r = c.post(
                    "/api/v1/alertmanager",
                    json=_payload([_alert(n, i, ALERTS[i % len(ALERTS)]) for i in range(per_node)]),
                )
                codes[r.status_code] = codes.get(r.status_code, 0) + 1
            sent_s = time.perf_counter() - t0
            total = nodes * per_node
            while c.get("/healthz").json()["queue"]:
                time.sleep(0.2)
            burst_s = time.perf_counter() - t0
            body = c.get("/metrics").text
            total_inc = c.get("/api/v1/incidents", params={"limit": 1}).json()["total"]
        import sqlite3

        con = sqlite3.connect(f"{d}/bench.db")
        stored = con.execute("select count(*) from incident_alerts").fetchone()[0] - acks
        unprocessed = con.execute("select count(*) from payloads where processed = 0").fetchone()[0]
        con.close()
    lat.sort()
    p99 = round(lat[int(0.99 * (len(lat) - 1))], 2)
    result: dict[str, Any] = {
        "benchmark": "analyzer",
        "ack_ms": {
            "p50": round(statistics.median(lat), 2),
            "p99": p99,
            "n": len(lat),
        },
        "burst": {
            "alerts": total,
            "posts": nodes,
            "http_codes": codes,
            "send_s": round(sent_s, 2),
            "processed_s": round(burst_s, 2),
            "alerts_stored": stored,
            "lost": total - stored,
            "unprocessed_payloads": unprocessed,
            "incidents": total_inc - acks,
        },
        "target": f"ack p99 <= {TARGET_ACK_P99_MS:.0f} ms; {nodes * per_node} alerts processed in "
        f"<= {TARGET_BURST_S:.0f} s with none lost",
        "webhook_metrics": [ln for ln in body.splitlines() if ln.startswith("hpcmind_webhook_requests_total")],
    }
    result["met"] = p99 <= TARGET_ACK_P99_MS and burst_s <= TARGET_BURST_S and stored == total
    write_results(out_dir, "analyzer", result, markdown(result))
    return result


def markdown(r: dict[str, Any]) -> str:
    b = r["burst"]
    return "\n".join(
        [
            "# Analyzer benchmark",
            "",
            f"Target: {r['target']} — {'met' if r['met'] else 'NOT met'}.",
            "",
            "| measure | value |",
            "|---|---|",
            f"| webhook ack p50 / p99 (ms, {r['ack_ms']['n']} single-alert POSTs) | {r['ack_ms']['p50']:.1f} / "
            f"{r['ack_ms']['p99']:.1f} |",
            f"| burst: alerts / POSTs | {b['alerts']} / {b['posts']} |",
            f"| burst: sent in / fully processed in (s) | {b['send_s']:.1f} / {b['processed_s']:.1f} |",
            f"| burst: stored / lost / incidents | {b['alerts_stored']} / {b['lost']} / {b['incidents']} |",
            "",
        ]
    )
