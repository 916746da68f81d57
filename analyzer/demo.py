"""`hpcmind demo`: the whole pipeline on one machine, no Docker.

simulator (real time) -> collector (/metrics + log shipping) -> Prometheus (rules) -> Alertmanager -> analyzer,
with each diagnosis printed as it lands.
"""

from __future__ import annotations

import itertools
import json
import shutil
import socket
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from collector.guard import GuardedCollector
from collector.logship import HttpPublisher, LogRecord, LogShipper, record_id
from collector.server import MetricsServer
from collector.sources.simulator import SimulatorSource
from hpcmind.errors import UsageError
from hpcmind.services.manager import ServiceManager
from hpcmind.settings import Settings
from simulator.cli import resolve_scenario
from simulator.scenario import load_scenario

from .app import create_app

REPO = Path(__file__).resolve().parents[1]


def _wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise UsageError(f"demo: {url} did not come up within {timeout:.0f}s")


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _check_ports(settings: Settings) -> None:
    """A port already taken is one line naming it (exit 2), before anything starts."""
    a, c = settings.analyzer, settings.collector
    for what, var, host, port in (
        ("analyzer", "HPCMIND_ANALYZER__PORT", a.host, a.port),
        ("collector", "HPCMIND_COLLECTOR__PORT", c.host, c.port),
    ):
        if not _port_free(host, port):
            raise UsageError(f"demo: the {what}'s port {host}:{port} is in use; free it or set {var}")


def _alerts_page(prom: str) -> str:
    """Prometheus' alerts page: /alerts on builds with the React UI, /classic/alerts on Debian's (no UI assets)."""
    for path in ("/alerts", "/classic/alerts"):
        try:
            if httpx.get(prom + path, timeout=2.0).status_code == 200:
                return prom + path
        except httpx.HTTPError:
            pass
    return prom + "/graph"


def _print_incident(inc: dict[str, Any], detail: dict[str, Any]) -> None:
    d = detail.get("diagnosis") or {}
    onset = datetime.fromisoformat(inc["onset"].replace("Z", "+00:00"))
    took = (datetime.now(UTC) - onset).total_seconds()
    culprit = ", ".join(f"{k} {v}" for k, v in inc["culprit"].items()) or "not localised"
    steps = d.get("remediation") or []
    print(
        f"\n=== incident {inc['id']}: {inc['root_cause']} ({inc['confidence']:.0%}) — {took:.0f} s after the "
        f"first alert fired ==="
    )
    print(f"  what broke : {inc['summary']}")
    print(f"  where      : {culprit}")
    for i, s in enumerate(steps[:3], 1):
        print(f"  do {i}       : {s}")
    alerts = ", ".join(a["alertname"] for a in detail.get("alerts", []))
    print(f"  alerts     : {alerts}")
    print(f"  more       : {inc['url']}  (API: /api/v1/incidents/{inc['id']})", flush=True)


def _shown(inc: dict[str, Any], detail: dict[str, Any]) -> tuple[Any, ...]:
    alerts = tuple(a["alertname"] for a in detail.get("alerts", []))
    return (inc["root_cause"], tuple(sorted(inc["culprit"].items())), inc["state"], alerts)


def _print_update(inc: dict[str, Any], detail: dict[str, Any], before: tuple[Any, ...]) -> None:
    """What changed since the incident was printed: a re-diagnosis, a job or alert joining it, its resolution."""
    cause, culprit, state, alerts = _shown(inc, detail)
    changes = []
    if cause != before[0]:
        changes.append(f"re-diagnosed {before[0]} -> {cause} ({inc['confidence']:.0%})")
    if culprit != before[1]:
        changes.append("culprit now " + (", ".join(f"{k} {v}" for k, v in culprit) or "not localised"))
    if alerts != before[3]:
        joined = [a for a in alerts if a not in before[3]] or list(alerts)
        changes.append(f"joined by {', '.join(joined)}")
    if state != before[2]:
        changes.append(state)
    if changes:
        print(f"  incident {inc['id']} update: {'; '.join(changes)}", flush=True)


def run_demo(settings: Settings, scenario: str, speed: float, minutes: float | None) -> int:
    if speed <= 0:
        raise UsageError("--speed: must be > 0")
    sc = load_scenario(resolve_scenario(scenario))
    _check_ports(settings)
    run_dir = settings.services.run_dir
    mgr = ServiceManager(settings)
    if mgr.up(["prometheus", "alertmanager"]) != 0:
        return 1
    a = settings.analyzer
    db = run_dir / "demo" / "hpcmind.db"
    shutil.rmtree(db.parent, ignore_errors=True)  # every demo starts from an empty incident store
    db.parent.mkdir(parents=True, exist_ok=True)
    if a.database_url == "sqlite:///hpcmind.db":  # the embedded default: keep demo state under the run directory
        settings = settings.model_copy(update={"analyzer": a.model_copy(update={"database_url": f"sqlite:///{db}"})})
        a = settings.analyzer
    # rules and the collector target into the running Prometheus
    prom = run_dir / "prometheus"
    for f in (REPO / "prometheus" / "rules").glob("*.yml"):
        shutil.copy(f, prom / "rules" / f.name)
    # analyzer
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host=a.host, port=a.port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    base = f"http://{a.host}:{a.port}"
    _wait_http(base + "/healthz", settings.services.ready_timeout_s)  # answers at once; the model warms beside
    # simulator + collector, shipping logs to the analyzer's ingest
    shipper = LogShipper(HttpPublisher(base + "/api/v1/logs", a.api_token.get_secret_value()))
    shipper.start()
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    seq = itertools.count()

    def on_log(t: float, source: str, line: str) -> None:
        ts = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        shipper.submit(LogRecord(record_id(run_id, next(seq)), ts, source, line))

    src = SimulatorSource(sc, speed=speed, on_log=on_log)
    metrics = MetricsServer(GuardedCollector([src]).collect, settings.collector.host, settings.collector.port)
    metrics.start()
    (prom / "targets" / "demo-collector.json").write_text(
        json.dumps([{"targets": [f"127.0.0.1:{metrics.port}"], "labels": {"cluster": sc.cluster.name}}])
    )
    httpx.post(f"http://127.0.0.1:{settings.prometheus.port}/-/reload", timeout=5)
    src.start()
    print(
        f"HPCMind demo: scenario {sc.name} ({len(src.sim.topo.node_names)} nodes, "
        f"{src.sim.topo.n_gpus} GPUs) at {speed:g}x real time"
    )
    print(f"  collector  http://127.0.0.1:{metrics.port}/metrics")
    print(
        f"  Prometheus {_alerts_page(f'http://127.0.0.1:{settings.prometheus.port}')}   "
        f"Alertmanager http://127.0.0.1:{settings.alertmanager.port}"
    )
    token = "change-me, the default" if a.api_token.get_secret_value() == "change-me" else "HPCMIND_ANALYZER__API_TOKEN"
    print(f"  analyzer   {base}/docs and incident pages {base}/incidents/<id> (log in with the API token: {token})")
    print(
        "  Grafana annotations queue in the analyzer's outbox until a Grafana answers at "
        f"{a.grafana_url} (docker compose up brings one). Ctrl-C stops the demo.",
        flush=True,
    )
    seen: dict[int, tuple[Any, ...]] = {}  # incident -> what was printed (cause, culprit, state, alerts)
    stop_at = time.monotonic() + minutes * 60 if minutes else None
    headers = {"Authorization": f"Bearer {a.api_token.get_secret_value()}"}
    model, t_model = "", time.monotonic()
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=10) as c:
            while stop_at is None or time.monotonic() < stop_at:
                time.sleep(2)
                now_model = c.get("/healthz").json().get("model", "ready")
                if now_model != model:  # the signatures diagnose at once; the learned model joins when loaded
                    took = f" after {time.monotonic() - t_model:.0f} s" if model else ""
                    print(f"  model      {now_model}{took}", flush=True)
                    model = now_model
                items = c.get("/api/v1/incidents", params={"limit": 100}).json()["items"]
                for inc in sorted(items, key=lambda i: i["id"]):
                    if not inc["root_cause"]:
                        continue
                    detail = c.get(f"/api/v1/incidents/{inc['id']}").json()  # a demo has a handful
                    key = _shown(inc, detail)
                    if inc["id"] not in seen:
                        _print_incident(inc, detail)
                    elif key != seen[inc["id"]]:
                        _print_update(inc, detail, seen[inc["id"]])
                    seen[inc["id"]] = key
    except KeyboardInterrupt:
        pass
    finally:
        src.stop()
        (prom / "targets" / "demo-collector.json").unlink(missing_ok=True)
        metrics.stop()
        shipper.drain(5)
        shipper.stop()
        server.should_exit = True
        time.sleep(0.5)
    print(f"\ndemo stopped: {len(seen)} incidents diagnosed; state kept in {db}", file=sys.stderr)
    print(
        "Prometheus and Alertmanager keep running for the next demo; `hpcmind services down` (or `make "
        "services-down`) stops them.",
        file=sys.stderr,
    )
    return 0
