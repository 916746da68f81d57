"""`node_health` and `job_health`: what an on-call engineer checks first, from Prometheus and the incident store.

The questions are named PromQL (the same exporters' names the evidence catalogue uses, `Hostname` and
`hostname` both accepted); `per_gpu`/`per_port` fold the answers into one row per device. A query that fails
is reported beside the others, never instead of them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from ..evidence.queries import Query
from .promql import QueryRefused

# (field, PromQL): `$node` / `$node_re` / `$window` are filled with escaped values
GPU_QUERIES: tuple[tuple[str, str], ...] = (
    ("util_pct", "DCGM_FI_DEV_GPU_UTIL{$host}"),
    ("temp_c", "DCGM_FI_DEV_GPU_TEMP{$host}"),
    ("fb_used_mib", "DCGM_FI_DEV_FB_USED{$host}"),
    ("last_xid", "DCGM_FI_DEV_XID_ERRORS{$host} > 0"),
    ("ecc_dbe_in_window", "increase(DCGM_FI_DEV_ECC_DBE_VOL_TOTAL{$host}[$window])"),
    ("remapped_rows_uncorrectable", "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS{$host}"),
    ("row_remap_failure", "DCGM_FI_DEV_ROW_REMAP_FAILURE{$host}"),
    ("nvlink_errors_in_window",
     'sum without (__name__) (increase({__name__=~"DCGM_FI_DEV_NVLINK_.*_ERROR_COUNT_TOTAL", $host}[$window]))'),
    ("throttle_reasons", "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS{$host}"),
)  # fmt: skip
IB_QUERIES: tuple[tuple[str, str], ...] = (
    ("state_id", 'node_infiniband_state_id{instance=~"$node_re(:[0-9]+)?"}'),
    ("link_downed_in_window", 'increase(node_infiniband_link_downed_total{instance=~"$node_re(:[0-9]+)?"}[$window])'),
    ("symbol_errors_in_window",
     'increase(node_infiniband_symbol_error_total{instance=~"$node_re(:[0-9]+)?"}[$window])'),
)  # fmt: skip
HOST_QUERIES: tuple[tuple[str, str], ...] = (
    ("up", 'min(up{instance=~"$node_re(:[0-9]+)?"})'),
    ("mem_available_ratio",
     'min(node_memory_MemAvailable_bytes{instance=~"$node_re(:[0-9]+)?"}'
     ' / node_memory_MemTotal_bytes{instance=~"$node_re(:[0-9]+)?"})'),
    ("oom_kills_in_window", 'sum(increase(node_vmstat_oom_kill{instance=~"$node_re(:[0-9]+)?"}[$window]))'),
)  # fmt: skip
IB_STATES = {"1": "down", "2": "init", "3": "armed", "4": "active", "5": "active_defer"}

Ask = Callable[[str], list[dict[str, Any]]]  # PromQL instant query -> vector


def render(template: str, window: timedelta, *, node: str | None = None, job: str | None = None) -> str:
    """Fill `$window`, and `$node`/`$node_re`/`$job` through the evidence catalogue's own escaping; `$host` asks
    for both spellings dcgm-exporter has used (`Hostname`, later `hostname`)."""
    out = template.replace("$window", f"{max(1, int(window.total_seconds()))}s")
    if "$host" in out:
        upper, lower = out.replace("$host", 'Hostname="$node"'), out.replace("$host", 'hostname="$node"')
        out = f"({upper}) or ({lower})"
    return Query("", "node" if node is not None else "job", out).render(node=node, job=job)


def _value(sample: dict[str, Any]) -> float | str:
    v = sample.get("value", [0, "NaN"])[1]
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return int(f) if f.is_integer() else round(f, 3)


def per_gpu(answers: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = defaultdict(dict)
    for field, vector in answers.items():
        for s in vector:
            m = s.get("metric", {})
            key = m.get("gpu") or m.get("pci_bus_id") or "?"
            row = rows[key]
            row.setdefault("gpu", key)
            for lab in ("UUID", "pci_bus_id", "modelName"):
                if lab in m:
                    row.setdefault(lab.lower(), m[lab])
            row[field] = _value(s)
            if field == "last_xid" and m.get("err_msg"):
                row["last_xid_msg"] = m["err_msg"]
    return [rows[k] for k in sorted(rows, key=lambda g: (len(g), g))]


def per_port(answers: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for field, vector in answers.items():
        for s in vector:
            m = s.get("metric", {})
            key = (m.get("device", "?"), m.get("port", "?"))
            row = rows.setdefault(key, {"device": key[0], "port": key[1]})
            v = _value(s)
            row[field] = v
            if field == "state_id":
                row["state"] = IB_STATES.get(str(v), str(v))
    return [rows[k] for k in sorted(rows)]


def ask_all(
    ask: Ask, queries: tuple[tuple[str, str], ...], fill: Callable[[str], str], errors: list[str]
) -> dict[str, list[dict[str, Any]]]:
    """Each named query's answer; a refused one goes to `errors` and the rest are still asked."""
    out: dict[str, list[dict[str, Any]]] = {}
    for field, template in queries:
        try:
            out[field] = ask(fill(template))
        except QueryRefused as exc:
            errors.append(f"{field}: {exc}")
    return out


def node_report(
    ask: Ask,
    node: str,
    window: timedelta,
    open_now: list[dict[str, Any]],
    recent: list[dict[str, Any]],
    now: datetime,
) -> dict[str, Any]:
    """Per-GPU and per-port rows, host signals, the node's open incidents (any age) and its incidents in the
    window by root cause; `problems` lists in words what an on-call engineer would act on."""
    errors: list[str] = []

    def fill(template: str) -> str:
        return render(template, window, node=node)

    host = {k: (_value(v[0]) if v else None) for k, v in ask_all(ask, HOST_QUERIES, fill, errors).items()}
    gpus = per_gpu(ask_all(ask, GPU_QUERIES, fill, errors))
    ports = per_port(ask_all(ask, IB_QUERIES, fill, errors))
    by_cause: dict[str, int] = defaultdict(int)
    for i in recent:
        by_cause[str(i.get("root_cause") or "undiagnosed")] += 1
    problems = [
        f"GPU {g['gpu']}: {what}"
        for g in gpus
        for what, bad in (
            (f"Xid {g.get('last_xid')} {g.get('last_xid_msg', '')}".strip(), "last_xid" in g),
            ("double-bit ECC errors", _pos(g.get("ecc_dbe_in_window"))),
            ("row remapping failed", _pos(g.get("row_remap_failure"))),
            ("NVLink errors", _pos(g.get("nvlink_errors_in_window"))),
        )
        if bad
    ]
    problems += [
        f"IB {p['device']} port {p['port']} is {p['state']}" for p in ports if p.get("state") not in (None, "active")
    ]
    problems += [
        f"IB {p['device']} port {p['port']} link went down" for p in ports if _pos(p.get("link_downed_in_window"))
    ]
    if host.get("up") == 0:
        problems.append("an exporter on this node is down")
    if _pos(host.get("oom_kills_in_window")):
        problems.append("the kernel OOM killer ran")
    problems += [f"open incident {i['id']}: {i.get('root_cause') or 'undiagnosed'}" for i in open_now]
    return {
        "node": node,
        "at": now.isoformat(),
        "window_hours": round(window.total_seconds() / 3600, 3),
        "healthy": not problems and not errors and bool(gpus or host.get("up") is not None),
        "problems": problems,
        "host": host,
        "gpus": gpus,
        "ib_ports": ports,
        "open_incidents": open_now,
        "incidents_in_window": dict(by_cause),
        "errors": errors,
    }


def _pos(v: Any) -> bool:
    return isinstance(v, int | float) and v > 0


JOB_QUERIES: tuple[tuple[str, str], ...] = (
    ("record", 'last_over_time(hpcmind_slurm_job_info{job_id="$job"}[$window])'),
    ("gpu_util_avg_pct", 'avg by (hpc_job) (avg_over_time(DCGM_FI_DEV_GPU_UTIL{hpc_job="$job"}[$window]))'),
    ("gpus_seen", 'count by (hpc_job) (last_over_time(DCGM_FI_DEV_GPU_UTIL{hpc_job="$job"}[$window]))'),
    ("fb_used_max_mib", 'max by (hpc_job) (max_over_time(DCGM_FI_DEV_FB_USED{hpc_job="$job"}[$window]))'),
    ("train_steps", 'sum by (job_id) (max_over_time(astro_train_steps_total{job_id="$job"}[$window]))'),
    ("data_wait_ratio",
     'avg by (job_id) (avg_over_time(astro_train_data_wait_seconds{job_id="$job"}[$window])'
     ' / avg_over_time(astro_train_step_seconds{job_id="$job"}[$window]))'),
    ("requests_waiting_max", 'max by (job_id) (max_over_time(vllm:num_requests_waiting{job_id="$job"}[$window]))'),
)  # fmt: skip


def job_report(ask: Ask, job: str, window: timedelta, incidents: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    errors: list[str] = []
    answers = ask_all(ask, JOB_QUERIES, lambda t: render(t, window, job=job), errors)
    records = answers.pop("record", [])
    # the newest state wins when the job changed state inside the window
    slurm = dict(records[-1]["metric"]) if records else None
    if slurm:
        slurm.pop("__name__", None)
        slurm.pop("instance", None)
    usage = {k: (_value(v[0]) if v else None) for k, v in answers.items()}
    return {
        "job": job,
        "at": now.isoformat(),
        "known": bool(slurm or any(v is not None for v in usage.values()) or incidents),
        "slurm": slurm,
        "usage": usage,
        "incidents": incidents,
        "errors": errors,
    }
