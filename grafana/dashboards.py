"""The dashboards as data: `python -m grafana.dashboards` writes grafana/dashboards/*.json (checked in; a test
regenerates them and compares). Every panel uses stock exporter names, so the dashboards work without our collector;
every dashboard shows HPCMind's incident annotations (tag `hpcmind`) on its time-series panels, the node and job
dashboards those of their node or job, and each links to the others (cluster -> node -> job) keeping time and
variables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# every panel reads the Prometheus the `datasource` variable selects (the provisioned one by default)
DS = {"type": "prometheus", "uid": "${datasource}"}
HOST = '{Hostname=~"$host"}'
NODE_INSTANCE = '{instance=~"($host)(:[0-9]+)?"}'
TTFT = "sum by (le, instance) (rate(vllm:time_to_first_token_seconds_bucket[2m]))"
E2E = "sum by (le, instance) (rate(vllm:e2e_request_latency_seconds_bucket[2m]))"
DIAG = "sum by (le) (rate(hpcmind_diagnosis_latency_seconds_bucket[10m]))"
# vLLM renamed its KV-cache gauge (gpu_cache_usage_perc before v0.9, kv_cache_usage_perc since): read either
KV_CACHE = "(vllm:kv_cache_usage_perc or vllm:gpu_cache_usage_perc)"
OUT = Path(__file__).parent / "dashboards"

NODE_UID, JOB_UID = "hpcmind-node", "hpcmind-job"
NODE_LINK = f"/d/{NODE_UID}?${{__url_time_range}}&${{datasource:queryparam}}&var-host="
JOB_LINK = f"/d/{JOB_UID}?${{__url_time_range}}&${{datasource:queryparam}}&var-job="
# the analyzer as a browser reaches it: set this constant where Grafana's users see another address
ANALYZER_DEFAULT = "http://localhost:8080"

DATASOURCE_VAR = {
    "name": "datasource",
    "label": "Prometheus",
    "type": "datasource",
    "query": "prometheus",
    "current": {"text": "Prometheus", "value": "prometheus"},
    "hide": 0,
}
ANALYZER_VAR = {
    "name": "analyzer",
    "label": "HPCMind analyzer URL",
    "type": "constant",
    "query": ANALYZER_DEFAULT,
    "hide": 2,
}
LINKS = [
    {
        "title": "HPCMind",
        "type": "dashboards",
        "tags": ["hpcmind"],
        "asDropdown": True,
        "keepTime": True,
        "includeVars": True,
    }
]
GRAFANA = {"type": "grafana", "uid": "-- Grafana --"}
BUILTIN = {
    "builtIn": 1,
    "datasource": GRAFANA,
    "enable": True,
    "hide": True,
    "iconColor": "rgba(0, 211, 255, 1)",
    "name": "Annotations & Alerts",
    "type": "dashboard",
}


def annotation_list(scope: tuple[str, str] | None = None) -> dict[str, Any]:
    """Every HPCMind incident; on a node or job dashboard (scope = (tag prefix, variable)) the incidents tagged with
    that node or job are the ones shown, the rest one toggle away. The analyzer tags each annotation `node:<name>`
    and `job:<id>`; a tag query with a variable matches one selected value."""

    def tags(name: str, tag_list: list[str], enable: bool) -> dict[str, Any]:
        return {
            "datasource": GRAFANA,
            "enable": enable,
            "iconColor": "red",
            "name": name,
            "target": {"limit": 100, "matchAny": False, "tags": tag_list, "type": "tags"},
        }

    out = [BUILTIN, tags("HPCMind incidents", ["hpcmind"], scope is None)]
    if scope is not None:
        prefix, var = scope
        out.append(tags(f"HPCMind incidents on this {prefix}", ["hpcmind", f"{prefix}:${var}"], True))
    return {"list": out}


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
    links: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": unit}
    if links:
        defaults["links"] = links
    return {
        "id": pid,
        "type": kind,
        "title": title,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "targets": [
            {"refId": chr(65 + i), "datasource": DS, "expr": e, "legendFormat": lg} for i, (e, lg) in enumerate(exprs)
        ],
    }


def table(
    pid: int,
    title: str,
    exprs: list[tuple[str, str]],
    *,
    columns: dict[str, str],
    links: dict[str, dict[str, Any]] | None = None,
    x: int = 0,
    y: int = 0,
    w: int = 12,
    h: int = 8,
) -> dict[str, Any]:
    """An instant table: one row per label set, the queries' values side by side (merged on their shared labels),
    only `columns` shown (field -> header), links on the named columns."""
    p = panel(pid, title, exprs, kind="table", x=x, y=y, w=w, h=h)
    for t in p["targets"]:
        t |= {"instant": True, "format": "table", "legendFormat": ""}
    p["transformations"] = [
        {"id": "merge", "options": {}},
        {
            "id": "organize",
            "options": {
                "excludeByName": {"Time": True},
                "includeByName": {field: True for field in columns},
                "indexByName": {field: i for i, field in enumerate(columns)},
                "renameByName": dict(columns),
            },
        },
    ]
    p["fieldConfig"]["overrides"] = [
        {"matcher": {"id": "byName", "options": field}, "properties": [{"id": "links", "value": [link]}]}
        for field, link in (links or {}).items()
    ]
    return p


def link(title: str, url: str) -> dict[str, Any]:
    return {"title": title, "url": url}


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


def dashboard(
    uid: str,
    title: str,
    panels: list[dict[str, Any]],
    variables: list[dict[str, Any]],
    scope: tuple[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "tags": ["hpcmind"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "annotations": annotation_list(scope),
        "links": LINKS,
        "templating": {"list": [DATASOURCE_VAR, ANALYZER_VAR, *variables]},
        "panels": panels,
        "editable": False,
    }


BUSY_GPU_UTIL = 10  # % utilisation below which an allocated GPU counts as idle


def gpu_efficiency(selector: str, by: str = "") -> list[str]:
    """GPUs allocated to jobs (those DCGM maps to a job), those of them busy, and their mean utilisation."""
    util = f"DCGM_FI_DEV_GPU_UTIL{selector}"
    return [f"count{by}({util})", f"count{by}({util} > {BUSY_GPU_UTIL})", f"avg{by}({util})"]


INCIDENT_LINK = link("Open the incident in HPCMind", "${analyzer}/incidents/${__data.fields.id}")
TO_NODE = link("Node and GPU health of ${__data.fields.Hostname}", NODE_LINK + "${__data.fields.Hostname}")
TO_NODE_OF_INCIDENT = link("Node and GPU health of ${__data.fields.node}", NODE_LINK + "${__data.fields.node}")
TO_JOB = link("Slurm job ${__data.fields.hpc_job}", JOB_LINK + "${__data.fields.hpc_job}")
TO_JOB_OF_INCIDENT = link("Slurm job ${__data.fields.job}", JOB_LINK + "${__data.fields.job}")


def open_incidents(pid: int, where: str, *, y: int, w: int = 24) -> dict[str, Any]:
    return table(
        pid,
        "Open incidents",
        [(f"hpcmind_incident_open{where}", "")],
        columns={
            "id": "Incident",
            "root_cause": "Root cause",
            "node": "Node",
            "gpu": "GPU",
            "job": "Job",
            "Value #A": "Confidence",
        },
        links={"id": INCIDENT_LINK, "node": TO_NODE_OF_INCIDENT, "job": TO_JOB_OF_INCIDENT},
        y=y,
        w=w,
        h=7,
    )


def xid_events(pid: int, where: str, *, x: int = 0, y: int, w: int = 12) -> dict[str, Any]:
    return table(
        pid,
        "Xid events (last code per GPU)",
        [(f"DCGM_FI_DEV_XID_ERRORS{where} > 0", "")],
        columns={"Hostname": "Node", "gpu": "GPU", "UUID": "UUID", "Value #A": "Xid"},
        links={"Hostname": TO_NODE},
        x=x,
        y=y,
        w=w,
    )


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
                open_incidents(3, "", y=8),
                table(
                    4,
                    "Node health",
                    [
                        ("count by (Hostname) (DCGM_FI_DEV_GPU_UTIL)", ""),
                        (
                            'label_replace(max by (node) (hpcmind_slurm_node_gpus), "Hostname", "$1", "node", "(.+)")',
                            "",
                        ),
                        ("avg by (Hostname) (DCGM_FI_DEV_GPU_UTIL)", ""),
                        ("max by (Hostname) (DCGM_FI_DEV_GPU_TEMP)", ""),
                        ("max by (Hostname) (DCGM_FI_DEV_XID_ERRORS)", ""),
                        ("sum by (Hostname) (increase(DCGM_FI_DEV_ECC_DBE_VOL_TOTAL[1h]))", ""),
                    ],
                    columns={
                        "Hostname": "Node",
                        "Value #A": "GPUs reporting",
                        "Value #B": "GPUs in Slurm",
                        "Value #C": "Mean GPU util %",
                        "Value #D": "Hottest GPU °C",
                        "Value #E": "Last Xid",
                        "Value #F": "DBE ECC / 1h",
                    },
                    links={"Hostname": TO_NODE},
                    y=15,
                    w=24,
                    h=9,
                ),
                table(
                    5,
                    "GPU efficiency per job (allocated vs busy)",
                    [(e, "") for e in gpu_efficiency('{hpc_job!=""}', " by (hpc_job) ")],
                    columns={
                        "hpc_job": "Job",
                        "Value #A": "GPUs allocated",
                        "Value #B": "GPUs busy (> 10 %)",
                        "Value #C": "Mean GPU util %",
                    },
                    links={"hpc_job": TO_JOB},
                    y=24,
                ),
                xid_events(6, "", x=12, y=24),
                panel(
                    7,
                    "GPU utilisation heatmap",
                    [("avg by (Hostname) (DCGM_FI_DEV_GPU_UTIL)", "{{Hostname}}")],
                    kind="heatmap",
                    unit="percent",
                    y=32,
                    w=24,
                ),
                panel(
                    8,
                    "Incidents by root cause",
                    [("sum by (root_cause) (hpcmind_incidents_total)", "{{root_cause}}")],
                    kind="bargauge",
                    y=40,
                ),
                panel(
                    9,
                    "Firing alerts",
                    [('count by (alertname) (ALERTS{alertstate="firing"})', "{{alertname}}")],
                    y=40,
                    x=12,
                ),
            ],
            [],
        ),
        "node-gpu-health": dashboard(
            NODE_UID,
            "HPCMind / Node and GPU health",
            [
                open_incidents(13, '{node=~"$host"}', y=0, w=12),
                table(
                    14,
                    "Jobs on this node",
                    [('count by (hpc_job) (DCGM_FI_DEV_GPU_UTIL{Hostname=~"$host", hpc_job!=""})', "")],
                    columns={"hpc_job": "Job", "Value #A": "GPUs"},
                    links={"hpc_job": TO_JOB},
                    x=12,
                    y=0,
                    h=7,
                ),
                panel(
                    1,
                    "GPU utilisation",
                    [(f"DCGM_FI_DEV_GPU_UTIL{HOST}", "{{Hostname}} GPU {{gpu}}")],
                    unit="percent",
                    y=7,
                ),
                panel(
                    2,
                    "SM activity",
                    [(f"DCGM_FI_PROF_SM_ACTIVE{HOST}", "{{Hostname}} GPU {{gpu}}")],
                    unit="percentunit",
                    x=12,
                    y=7,
                ),
                panel(
                    3,
                    "Framebuffer used",
                    [(f"DCGM_FI_DEV_FB_USED{HOST}", "{{Hostname}} GPU {{gpu}}")],
                    unit="decmbytes",
                    y=15,
                ),
                panel(
                    4,
                    "Temperature",
                    [(f"DCGM_FI_DEV_GPU_TEMP{HOST}", "{{Hostname}} GPU {{gpu}}")],
                    unit="celsius",
                    x=12,
                    y=15,
                ),
                panel(5, "Power", [(f"DCGM_FI_DEV_POWER_USAGE{HOST}", "{{Hostname}} GPU {{gpu}}")], unit="watt", y=23),
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
                    y=23,
                ),
                xid_events(7, HOST, y=31),
                panel(
                    8,
                    "Uncorrectable ECC / remapped rows",
                    [
                        (f"increase(DCGM_FI_DEV_ECC_DBE_VOL_TOTAL{HOST}[10m])", "DBE {{Hostname}} {{gpu}}"),
                        (f"DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS{HOST}", "remapped {{Hostname}} {{gpu}}"),
                    ],
                    x=12,
                    y=31,
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
                    y=39,
                ),
                panel(
                    10,
                    "InfiniBand port state (4 = active)",
                    [(f"node_infiniband_state_id{NODE_INSTANCE}", "{{instance}} {{device}}")],
                    x=12,
                    y=39,
                ),
                panel(
                    11,
                    "InfiniBand errors / 5m",
                    [
                        (
                            f"increase(node_infiniband_symbol_error_total{NODE_INSTANCE}[5m])",
                            "symbol {{instance}} {{device}}",
                        ),
                        (
                            f"increase(node_infiniband_link_downed_total{NODE_INSTANCE}[5m])",
                            "downed {{instance}} {{device}}",
                        ),
                    ],
                    y=47,
                ),
                panel(
                    12,
                    "Host memory available",
                    [
                        (
                            f"node_memory_MemAvailable_bytes{NODE_INSTANCE} / "
                            f"node_memory_MemTotal_bytes{NODE_INSTANCE}",
                            "{{instance}}",
                        )
                    ],
                    unit="percentunit",
                    x=12,
                    y=47,
                ),
            ],
            [host_var],
            scope=("node", "host"),
        ),
        "slurm-job": dashboard(
            JOB_UID,
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
                    8,
                    "GPUs allocated / busy (> 10 %)",
                    list(zip(gpu_efficiency('{hpc_job=~"$job"}')[:2], ("allocated", "busy"), strict=True)),
                    kind="stat",
                    y=5,
                    w=6,
                    h=5,
                ),
                panel(
                    9,
                    "Mean GPU utilisation",
                    [(gpu_efficiency('{hpc_job=~"$job"}')[2], "util")],
                    kind="gauge",
                    unit="percent",
                    x=6,
                    y=5,
                    w=6,
                    h=5,
                ),
                table(
                    10,
                    "Nodes of this job",
                    [('count by (Hostname) (DCGM_FI_DEV_GPU_UTIL{hpc_job=~"$job"})', "")],
                    columns={"Hostname": "Node", "Value #A": "GPUs"},
                    links={"Hostname": TO_NODE},
                    x=12,
                    y=5,
                    h=5,
                ),
                open_incidents(11, '{job=~"$job"}', y=10),
                panel(
                    2,
                    "GPU utilisation per GPU",
                    [('DCGM_FI_DEV_GPU_UTIL{hpc_job=~"$job"}', "{{Hostname}} GPU {{gpu}}")],
                    unit="percent",
                    y=17,
                ),
                panel(
                    3,
                    "GPU memory per GPU",
                    [('DCGM_FI_DEV_FB_USED{hpc_job=~"$job"}', "{{Hostname}} GPU {{gpu}}")],
                    unit="decmbytes",
                    x=12,
                    y=17,
                ),
                panel(
                    4,
                    "Step time and data wait",
                    [
                        ('astro_train_step_seconds{job_id=~"$job"}', "step rank {{rank}}"),
                        ('astro_train_data_wait_seconds{job_id=~"$job"}', "data wait rank {{rank}}"),
                    ],
                    unit="s",
                    y=25,
                ),
                panel(5, "Loss", [('astro_train_loss{job_id=~"$job"}', "rank {{rank}}")], x=12, y=25),
                panel(
                    6,
                    "Checkpoint and shared-filesystem I/O pressure",
                    [("rate(node_pressure_io_stalled_seconds_total[2m])", "{{instance}}")],
                    unit="percentunit",
                    y=33,
                ),
                panel(
                    7, "Throughput", [('astro_train_samples_per_second{job_id=~"$job"}', "rank {{rank}}")], x=12, y=33
                ),
            ],
            [job_var],
            scope=("job", "job"),
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
                panel(2, "KV-cache usage", [(KV_CACHE, "{{instance}}")], unit="percentunit", x=12),
                panel(
                    3,
                    "Time to first token p50 / p99",
                    [
                        (f"histogram_quantile(0.5, {TTFT})", "p50 {{instance}}"),
                        (f"histogram_quantile(0.99, {TTFT})", "p99 {{instance}}"),
                    ],
                    unit="s",
                    y=8,
                ),
                panel(
                    4,
                    "End-to-end latency p99",
                    [(f"histogram_quantile(0.99, {E2E})", "{{instance}}")],
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
                open_incidents(6, "", y=0),
                {
                    **panel(1, "HPCMind annotations", [], kind="annolist", y=7, w=24, h=10),
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
                    y=17,
                ),
                panel(
                    3,
                    "Diagnosis latency p50 / p99",
                    [(f"histogram_quantile(0.5, {DIAG})", "p50"), (f"histogram_quantile(0.99, {DIAG})", "p99")],
                    unit="s",
                    x=12,
                    y=17,
                ),
                panel(
                    4,
                    "Webhook requests by outcome",
                    [("sum by (outcome) (rate(hpcmind_webhook_requests_total[5m]))", "{{outcome}}")],
                    y=25,
                ),
                panel(
                    5,
                    "Grafana outbox",
                    [
                        ("hpcmind_grafana_outbox_size", "waiting"),
                        ("increase(hpcmind_grafana_failures_total[10m])", "failures / 10m"),
                    ],
                    x=12,
                    y=25,
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
