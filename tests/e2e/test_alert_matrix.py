"""The 18-cause matrix: simulator (real time, compressed timeline) -> collector -> real Prometheus -> real
Alertmanager -> a webhook receiver. Each root cause runs as its own small cluster (own node names and job ids) in
one collector, beside a no-fault control cluster of the same length that must raise nothing.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx
import pytest

from collector.guard import GuardedCollector
from collector.server import MetricsServer
from collector.sources.simulator import SimulatorSource
from hpcmind.settings import Settings
from hpcmind.taxonomy import root_cause_ids
from simulator.scenario import parse_scenario
from tests.conftest import ROOT

CAUSES = sorted(root_cause_ids())
# alerts that must arrive for each cause (each also has others that may)
EXPECTED: dict[str, set[str]] = {
    "gpu_oom": {"SlurmJobFailed"},
    "host_oom": {"HostOOMKill", "SlurmJobOutOfMemory"},
    "gpu_hardware_fault": {"GPUMissing", "SlurmJobFailed"},
    "gpu_memory_error": {"GPUXidError", "GPUUncorrectableMemoryError"},
    "nvlink_error": {"GPUXidError", "GPUNVLinkErrors"},
    "gpu_thermal": {"GPUThermalThrottling"},
    "network_fabric": {"InfiniBandPortDown", "InfiniBandErrorsRising"},
    "collective_hang": {"JobGPUsIdle"},
    "rendezvous_failure": {"SlurmJobFailed"},
    "storage_io": {"FilesystemFull"},
    "dataloader_bottleneck": {"TrainingInputStarved"},
    "numerical_divergence": {"TrainingLossNaN"},
    "software_error": {"SlurmJobFailed"},
    "environment_error": {"SlurmJobFailed"},
    "walltime_exceeded": {"SlurmJobTimeout"},
    "node_failure": {"NodeDown", "SlurmJobNodeFail"},
    "preemption": {"SlurmJobPreempted"},
    "inference_overload": {"InferenceKVCacheSaturated"},
}
VARIANT = {
    "gpu_hardware_fault": "xid79",
    "storage_io": "disk-full",
    "rendezvous_failure": "port-in-use",
    "host_oom": "cgroup",
}
STARTS_A_JOB = {"rendezvous_failure", "environment_error"}  # these need free GPUs for the job that fails
SPEED = 5.0  # simulated seconds per wall second: a 5 s tick every wall second
FAULT_AT = 150.0  # simulated seconds (30 s of wall time): jobs are busy before the fault
DEADLINE = 200.0  # wall seconds after the fault for every expected alert
# fresh series identities per run: a rerun against the same Prometheus must not see the last run's counters
RUN = int(time.time()) % 90
TAG = "".join(chr(ord("a") + int(d)) for d in f"{RUN:02d}")


# beyond the matrix: a GPU that drops out of DCGM with no driver line; only its absence shows (GPUMissing)
SILENT = len(CAUSES) + 1


def scenario(k: int, cause: str | None, variant: str | None = None) -> dict[str, Any]:
    mix = {"inference": 1.0} if cause == "inference_overload" else {"training": 1.0}
    faults: dict[str, Any] = {"random": {"enabled": False, "confounders_per_hour": 30}, "cascade_scale": 0.8}
    variant = variant or VARIANT.get(cause or "")
    if cause:
        faults["scheduled"] = [{"at": FAULT_AT, "root_cause": cause, **({"variant": variant} if variant else {})}]
    return {
        "name": f"e2e-{cause or 'control'}{'-' + variant if variant else ''}",
        "seed": 100 + k,
        "tick_seconds": SPEED,
        "cluster": {
            "name": "e2e",
            "partitions": [
                {"name": "gpu", "nodes": 3, "node_prefix": f"m{k:02d}{TAG}n", "gpus_per_node": 4, "ib_hcas": 2}
            ],
        },
        "workload": {
            "arrivals_per_hour": 0,
            "initial_utilisation": 0.4 if cause in STARTS_A_JOB else 0.7,
            "mix": mix,
            "user_failure_rate": 0,
            "mean_runtime": "30h",
            "first_job_id": 100000 * (k + 1) + 1000 * RUN,
        },
        "faults": faults,
    }


def owner(alert: dict[str, Any]) -> int | None:
    """Which simulated cluster an alert came from: its node names or job ids say so."""
    lb = alert["labels"]
    for key in ("Hostname", "hostname", "instance", "nodes"):
        v = lb.get(key, "")
        if v.startswith("m") and v[1:3].isdigit():
            return int(v[1:3])
    jid = lb.get("job_id") or lb.get("hpc_job")
    if jid and jid.isdigit():
        return int(jid) // 100000 - 1
    return None


@pytest.fixture(scope="module")
def received(settings: Settings) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            got.extend(a for a in body["alerts"] if a["status"] == "firing")
            self.send_response(200)
            self.end_headers()

        def log_message(self, *a: object) -> None:
            pass

    hook = HTTPServer(("127.0.0.1", settings.analyzer.port), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    prom = settings.services.run_dir / "prometheus"
    for f in (ROOT / "prometheus" / "rules").glob("*.yml"):
        shutil.copy(f, prom / "rules" / f.name)
    assert httpx.post(f"http://127.0.0.1:{settings.prometheus.port}/-/reload").status_code == 200
    sources = [
        SimulatorSource(parse_scenario(scenario(k, c)), speed=SPEED, name=f"sim-{c or 'control'}")
        for k, c in enumerate([*CAUSES, None])
    ] + [
        SimulatorSource(
            parse_scenario(scenario(SILENT, "gpu_hardware_fault", "silent")), speed=SPEED, name="sim-silent"
        )
    ]
    srv = MetricsServer(GuardedCollector(sources).collect, port=0)
    srv.start()
    target = prom / "targets" / "e2e.json"
    target.write_text(json.dumps([{"targets": [f"127.0.0.1:{srv.port}"]}]))
    for s in sources:
        s.start()
    t_fault = time.monotonic() + FAULT_AT / SPEED
    try:
        while time.monotonic() < t_fault + DEADLINE:
            seen = {(owner(a), a["labels"]["alertname"]) for a in got}
            if all((k, name) in seen for k, c in enumerate(CAUSES) for name in EXPECTED[c]) and (
                (SILENT, "GPUMissing") in seen
            ):
                time.sleep(5)  # a little longer, so the control run gets the same chance to misbehave
                break
            time.sleep(1)
    finally:
        target.unlink(missing_ok=True)
        for s in sources:
            s.stop()
        srv.stop()
        hook.shutdown()
        hook.server_close()
        for f in (ROOT / "prometheus" / "rules").glob("*.yml"):
            (prom / "rules" / f.name).unlink(missing_ok=True)
        httpx.post(f"http://127.0.0.1:{settings.prometheus.port}/-/reload")
    return got


@pytest.mark.parametrize("cause", CAUSES)
def test_expected_alerts_arrive(cause: str, received: list[dict[str, Any]]) -> None:
    k = CAUSES.index(cause)
    names = {a["labels"]["alertname"] for a in received if owner(a) == k}
    assert EXPECTED[cause] <= names, f"{cause}: got {sorted(names)}"
    causes = {c for a in received if owner(a) == k for c in a["annotations"]["hpcmind_causes"].split(",")}
    assert cause in causes


def test_control_run_raises_nothing(received: list[dict[str, Any]]) -> None:
    control = len(CAUSES)
    assert [a["labels"] for a in received if owner(a) == control] == []
    assert all(owner(a) is not None for a in received), [a["labels"] for a in received if owner(a) is None]


def test_a_gpu_gone_without_a_line_raises_the_absence_alert_naming_node_and_gpu(received: list[dict[str, Any]]) -> None:
    missing = [a["labels"] for a in received if owner(a) == SILENT and a["labels"]["alertname"] == "GPUMissing"]
    assert missing, f"no GPUMissing: {sorted({a['labels']['alertname'] for a in received if owner(a) == SILENT})}"
    assert all(lb["Hostname"].startswith(f"m{SILENT:02d}") and lb["gpu"].isdigit() for lb in missing), missing
