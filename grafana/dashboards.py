"""The dashboards as data: `python -m grafana.dashboards` writes grafana/dashboards/*.json (checked in; a test
regenerates them and compares). Every panel uses stock exporter names, so the dashboards work without our collector,
and every dashboard shows HPCMind's incident annotations (tag `hpcmind`) on its time-series panels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DS = {"type": "prometheus", "uid": "prometheus"}
HOST = '{Hostname=~"$host"}'
TTFT = "sum by (le, instance) (rate(vllm:time_to_first_token_seconds_bucket[2m]))"
E2E = "sum by (le, instance) (rate(vllm:e2e_request_latency_seconds_bucket[2m]))"
DIAG = "sum by (le) (rate(hpcmind_diagnosis_latency_seconds_bucket[10m]))"
OUT = Path(__file__).parent / "dashboards"

ANNOTATIONS = {
    "list": [
        {
            "builtIn": 1,
            "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True,
            "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts",
            "type": "dashboard",
        },
        {
            "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True,
            "iconColor": "red",
            "name": "HPCMind incidents",
            "target": {"limit": 100, "matchAny": False, "tags": ["hpcmind"], "type": "tags"},
        },
    ]
}


def panel(
    pid: int,
    title: str,
    exprs: list[tuple[str, str]],
    *,
    kind: str = "timeseries",
    unit: str = "short",
    x: int = 0,
    y: int = 0,
    w: int = 12,
    h: int = 8,
) -> dict[str, Any]:
    return {
        "id": pid,
        "type": kind,
        "title": title,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {"refId": chr(65 + i), "datasource": DS, "expr": e, "legendFormat": lg} for i, (e, lg) in enumerate(exprs)
        ],
    }


def variable(name: str, query: str, label: str, multi: bool = True) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": query,
        "refresh": 2,
        "includeAll": True,
        "multi": multi,
        "allValue": ".*",
        "current": {"text": "All", "value": "$__all"},
    }


def dashboard(uid: str, title: str, panels: list[dict[str, Any]], variables: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "tags": ["hpcmind"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "annotations": ANNOTATIONS,
        "templating": {"list": variables},
        "panels": panels,
        "editable": False,
    }


def build() -> dict[str, dict[str, Any]]:
    host_var = variable("host", "label_values(DCGM_FI_DEV_GPU_UTIL, Hostname)", "Host")
    job_var = variable("job", "label_values(hpcmind_slurm_job_info, job_id)", "Slurm job", multi=False)
    return {
        "cluster-overview": dashboard(
            "hpcmind-cluster",
            "HPCMind / Cluster overview",
            [
                panel(
                    1,
                    "Nodes by state",
                    [(f"slurm_nodes_{s}", s) for s in ("alloc", "mix", "idle", "drain", "down")],
                    kind="timeseries",
                    y=0,
                ),
                panel(
                    2,
                    "Jobs by state",
                    [
                        (f"slurm_queue_{s}", s)
                        for s in ("running", "pending", "failed", "timeout", "preempted", "node_fail")
                    ],
                    y=0,
                    x=12,
                ),
                panel(
                    3,
                    "GPU utilisation heatmap",
                    [("avg by (Hostname) (DCGM_FI_DEV_GPU_UTIL)", "{{Hostname}}")],
                    kind="heatmap",
                    unit="percent",
                    y=8,
                    w=24,
                ),
                panel(
                    4,
                    "Incidents by root cause",
                    [("sum by (root_cause) (hpcmind_incidents_total)", "{{root_cause}}")],
                    kind="bargauge",
                    y=16,
                ),
                panel(
                    5,
                    "Firing alerts",
                    [('count by (alertname) (ALERTS{alertstate="firing"})', "{{alertname}}")],
                    y=16,
                    x=12,
                ),
            ],
            [],
        ),
        "node-gpu-health": dashboard(
            "hpcmind-node",
            "HPCMind / Node and GPU health",
            [
                panel(
                    1, "GPU utilisation", [(f"DCGM_FI_DEV_GPU_UTIL{HOST}", "{{Hostname}} GPU {{gpu}}")], unit="percent"
                ),
                panel(
                    2,
                    "SM activity",
                    [(f"DCGM_FI_PROF_SM_ACTIVE{HOST}", "{{Hostname}} GPU {{gpu}}")],
                    unit="percentunit",
                    x=12,
                ),
                panel(
                    3,
                    "Framebuffer used",
                    [(f"DCGM_FI_DEV_FB_USED{HOST}", "{{Hostname}} GPU {{gpu}}")],
                    unit="decmbytes",
                    y=8,
                ),
                panel(
                    4,
                    "Temperature",
                    [(f"DCGM_FI_DEV_GPU_TEMP{HOST}", "{{Hostname}} GPU {{gpu}}")],
                    unit="celsius",
                    x=12,
                    y=8,
                ),
                panel(5, "Power", [(f"DCGM_FI_DEV_POWER_USAGE{HOST}", "{{Hostname}} GPU {{gpu}}")], unit="watt", y=16),
                panel(
                    6,
                    "Thermal / power-brake throttling (1 = active)",
                    [
                        (
                            f"(floor(DCGM_FI_DEV_CLOCK_THROTTLE_REASONS{HOST} / 8) % 2) + "
                            f"(floor(DCGM_FI_DEV_CLOCK_THROTTLE_REASONS{HOST} / 32) % 4 > bool 0)",
                            "{{Hostname}} GPU {{gpu}}",
                        )
                    ],
                    x=12,
                    y=16,
                ),
                panel(
                    7,
                    "Xid (last code)",
                    [(f"DCGM_FI_DEV_XID_ERRORS{HOST} > 0", "{{Hostname}} GPU {{gpu}} {{err_msg}}")],
                    y=24,
                ),
                panel(
                    8,
                    "Uncorrectable ECC / remapped rows",
                    [
                        (f"increase(DCGM_FI_DEV_ECC_DBE_VOL_TOTAL{HOST}[10m])", "DBE {{Hostname}} {{gpu}}"),
                        (f"DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS{HOST}", "remapped {{Hostname}} {{gpu}}"),
                    ],
                    x=12,
                    y=24,
                ),
                panel(
                    9,
                    "NVLink errors / 5m",
                    [
                        (
                            f"increase(DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL{HOST}[5m])",
                            "{{Hostname}} GPU {{gpu}}",
                        )
                    ],
                    y=32,
                ),
                panel(
                    10,
                    "InfiniBand port state (4 = active)",
                    [('node_infiniband_state_id{instance=~"($host)(:[0-9]+)?"}', "{{instance}} {{device}}")],
                    x=12,
                    y=32,
                ),
                panel(
                    11,
                    "InfiniBand errors / 5m",
                    [
                        (
                            'increase(node_infiniband_symbol_error_total{instance=~"($host)(:[0-9]+)?"}[5m])',
                            "symbol {{instance}} {{device}}",
                        ),
                        (
                            'increase(node_infiniband_link_downed_total{instance=~"($host)(:[0-9]+)?"}[5m])',
                            "downed {{instance}} {{device}}",
                        ),
                    ],
                    y=40,
                ),
                panel(
                    12,
                    "Host memory available",
                    [
                        (
                            'node_memory_MemAvailable_bytes{instance=~"($host)(:[0-9]+)?"} / '
                            'node_memory_MemTotal_bytes{instance=~"($host)(:[0-9]+)?"}',
                            "{{instance}}",
                        )
                    ],
                    unit="percentunit",
                    x=12,
                    y=40,
                ),
            ],
            [host_var],
        ),
        "slurm-job": dashboard(
            "hpcmind-job",
            "HPCMind / Slurm job",
            [
                panel(
                    1,
                    "Job",
                    [('hpcmind_slurm_job_info{job_id=~"$job"}', "{{job_id}} {{name}} {{state}} {{nodes}}")],
                    kind="table",
                    w=24,
                    h=5,
                ),
                panel(
                    2,
                    "GPU utilisation per GPU",
                    [('DCGM_FI_DEV_GPU_UTIL{hpc_job=~"$job"}', "{{Hostname}} GPU {{gpu}}")],
                    unit="percent",
                    y=5,
                ),
                panel(
                    3,
                    "GPU memory per GPU",
                    [('DCGM_FI_DEV_FB_USED{hpc_job=~"$job"}', "{{Hostname}} GPU {{gpu}}")],
                    unit="decmbytes",
                    x=12,
                    y=5,
                ),
                panel(
                    4,
                    "Step time and data wait",
                    [
                        ('astro_train_step_seconds{job_id=~"$job"}', "step rank {{rank}}"),
                        ('astro_train_data_wait_seconds{job_id=~"$job"}', "data wait rank {{rank}}"),
                    ],
                    unit="s",
                    y=13,
                ),
                panel(5, "Loss", [('astro_train_loss{job_id=~"$job"}', "rank {{rank}}")], x=12, y=13),
                panel(
                    6,
                    "Checkpoint and shared-filesystem I/O pressure",
                    [("rate(node_pressure_io_stalled_seconds_total[2m])", "{{instance}}")],
                    unit="percentunit",
                    y=21,
                ),
                panel(
                    7, "Throughput", [('astro_train_samples_per_second{job_id=~"$job"}', "rank {{rank}}")], x=12, y=21
                ),
            ],
            [job_var],
        ),
        "inference": dashboard(
            "hpcmind-inference",
            "HPCMind / Inference (vLLM)",
            [
                panel(
                    1,
                    "Requests running / waiting",
                    [
                        ("vllm:num_requests_running", "running {{instance}}"),
                        ("vllm:num_requests_waiting", "waiting {{instance}}"),
                    ],
                ),
                panel(2, "KV-cache usage", [("vllm:kv_cache_usage_perc", "{{instance}}")], unit="percentunit", x=12),
                panel(
                    3,
                    "Time to first token p50 / p99",
                    [
                        (
                            f"histogram_quantile(0.5, {TTFT})",
                            "p50 {{instance}}",
                        ),
                        (
                            f"histogram_quantile(0.99, {TTFT})",
                            "p99 {{instance}}",
                        ),
                    ],
                    unit="s",
                    y=8,
                ),
                panel(
                    4,
                    "End-to-end latency p99",
                    [
                        (
                            f"histogram_quantile(0.99, {E2E})",
                            "{{instance}}",
                        )
                    ],
                    unit="s",
                    x=12,
                    y=8,
                ),
                panel(5, "Preemptions / s", [("rate(vllm:num_preemptions_total[2m])", "{{instance}}")], y=16),
                panel(
                    6, "Generated tokens / s", [("rate(vllm:generation_tokens_total[2m])", "{{instance}}")], x=12, y=16
                ),
            ],
            [],
        ),
        "incidents": dashboard(
            "hpcmind-incidents",
            "HPCMind / Incidents",
            [
                {
                    **panel(1, "HPCMind annotations", [], kind="annolist", w=24, h=10),
                    "options": {
                        "tags": ["hpcmind"],
                        "onlyFromThisDashboard": False,
                        "onlyInTimeRange": True,
                        "limit": 50,
                        "showTags": True,
                        "showTime": True,
                        "showUser": False,
                    },
                },
                panel(
                    2,
                    "Incident rate by root cause",
                    [("sum by (root_cause) (increase(hpcmind_incidents_total[1h]))", "{{root_cause}}")],
                    y=10,
                ),
                panel(
                    3,
                    "Diagnosis latency p50 / p99",
                    [
                        (
                            f"histogram_quantile(0.5, {DIAG})",
                            "p50",
                        ),
                        (
                            f"histogram_quantile(0.99, {DIAG})",
                            "p99",
                        ),
                    ],
                    unit="s",
                    x=12,
                    y=10,
                ),
                panel(
                    4,
                    "Webhook requests by outcome",
                    [("sum by (outcome) (rate(hpcmind_webhook_requests_total[5m]))", "{{outcome}}")],
                    y=18,
                ),
                panel(
                    5,
                    "Grafana outbox",
                    [
                        ("hpcmind_grafana_outbox_size", "waiting"),
                        ("increase(hpcmind_grafana_failures_total[10m])", "failures / 10m"),
                    ],
                    x=12,
                    y=18,
                ),
            ],
            [],
        ),
    }


def write() -> None:
    OUT.mkdir(exist_ok=True)
    for name, d in build().items():
        (OUT / f"{name}.json").write_text(json.dumps(d, indent=2) + "\n")


if __name__ == "__main__":
    write()
