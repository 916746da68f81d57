"""End to end with real Prometheus and Alertmanager: a GPU falls off the bus under a running multi-node training
job -> exactly one incident, gpu_hardware_fault, culprit node + GPU + job, a Grafana annotation, within 60 s."""

from __future__ import annotations

import itertools
import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from collector.guard import GuardedCollector
from collector.logship import HttpPublisher, LogRecord, LogShipper, record_id
from collector.server import MetricsServer
from collector.sources.simulator import SimulatorSource
from hpcmind.settings import Settings
from simulator.scenario import parse_scenario
from tests.e2e.conftest import Stack, analyzer_stack, training_scenario
from tests.standins.grafana import GrafanaStandIn

FAULT_AT = 65.0  # the GPU reports for a while first, as a real one would before it falls off


def ours(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """This cluster's incidents (Alertmanager may still deliver an earlier test's alerts to the same port)."""
    return [
        i
        for i in items
        if str(i["culprit"].get("node", "")).startswith("xb") or str(i["culprit"].get("job", "")).startswith("770")
    ]


def ours_annotated(grafana: GrafanaStandIn) -> list[dict[str, Any]]:
    return [a for a in grafana.annotations if "node:xb002" in a["tags"]]


def test_gpu_off_the_bus_under_a_multinode_job(settings: Settings, tmp_path: Any) -> None:
    with analyzer_stack(settings, tmp_path / "e2e.db") as stack:
        run_xid79(settings, stack)


def run_xid79(settings: Settings, stack: Stack) -> None:
    base, h, grafana = stack.base, stack.headers, stack.grafana
    shipper = LogShipper(HttpPublisher(base + "/api/v1/logs", settings.analyzer.api_token.get_secret_value()))
    seq = itertools.count()

    def on_log(t: float, source: str, line: str) -> None:
        shipper.submit(
            LogRecord(record_id("e2e-xid79", next(seq)), datetime.fromtimestamp(t, UTC).isoformat(), source, line)
        )

    scen = parse_scenario(
        training_scenario(
            "e2e-xid79", 11, "xb", nodes=2, gpus=4, first_job=77000,
            faults={
                "cascade_scale": 0.1,
                "scheduled": [
                    {"at": FAULT_AT, "root_cause": "gpu_hardware_fault", "node": "xb002", "gpu": 2, "variant": "xid79"}
                ],
            },
        )
    )  # fmt: skip
    src = SimulatorSource(scen, on_log=on_log, name="sim-e2e")
    metrics = MetricsServer(GuardedCollector([src]).collect, port=0)
    try:
        metrics.start()
        (stack.targets / "e2e-xid79.json").write_text(
            json.dumps([{"targets": [f"127.0.0.1:{metrics.port}"], "labels": {"cluster": "e2e"}}])
        )
        shipper.start()
        src.start()
        job = next(j for j in src.sim.jobs.values() if any(src.sim.topo.node_names[n] == "xb002" for n in j.nodes))
        assert job.n_nodes == 2, "the job under the fault spans both nodes"
        onset = time.monotonic() + FAULT_AT
        items: list[dict[str, Any]] = []
        while time.monotonic() < onset + 60:
            items = ours(httpx.get(base + "/api/v1/incidents", headers=h).json()["items"])
            if items and items[0]["root_cause"] and ours_annotated(grafana):
                break
            time.sleep(0.5)
        took = time.monotonic() - onset
        time.sleep(3)  # the cascade keeps firing (the job fails): it must not open a second incident
        items = ours(httpx.get(base + "/api/v1/incidents", headers=h).json()["items"])
    finally:
        (stack.targets / "e2e-xid79.json").unlink(missing_ok=True)
        src.stop()
        metrics.stop()
        shipper.stop()
    truth = src.sim.truth[0]
    assert truth.root_cause == "gpu_hardware_fault" and truth.job == str(job.id)
    assert len(items) == 1, items
    inc = items[0]
    assert inc["root_cause"] == "gpu_hardware_fault"
    assert inc["culprit"] == {"node": "xb002", "gpu": "2", "job": str(job.id)}
    assert took <= 60, f"diagnosis and annotation took {took:.0f}s after the fault"
    ann = ours_annotated(grafana)[0]
    assert {"hpcmind", "gpu_hardware_fault", "node:xb002", f"job:{job.id}"} <= set(ann["tags"])
    # the page draws the windows the real Prometheus returned (inline SVG, no script, no CDN)
    page = httpx.get(f"{base}/incidents/{inc['id']}", headers=h).text
    assert "<h2>Metric windows</h2>" in page and page.count("<polyline") >= 1
    assert "DCGM_FI_" in page.split("<h2>Metric windows</h2>", 1)[1].split("<h2>", 1)[0]
