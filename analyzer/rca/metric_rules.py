"""Root-cause hints from metric windows, on the stock exporter names.

dcgm-exporter (`DCGM_FI_*`, `Hostname` or `hostname`), node_exporter (`node_*`), vLLM (`vllm:*`),
and the workloads' own step metrics. Each rule looks at one series and says how it deviates.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from hpcmind.contract import MetricSeries

from .units import celsius, human_bytes
from .xid import xid_cause

HOST_LABELS = ("Hostname", "hostname", "node", "host", "instance", "nodename")


@dataclass(frozen=True)
class MetricHit:
    series: int
    cause: str
    weight: float
    name: str
    detail: str
    onset: float | None


NODE_JOBS = ("node", "node_exporter", "node-exporter", "nodes")


def node_instance(labels: dict[str, str]) -> bool:
    """Whether `instance` names a node: node_exporter's target (:9100 or a node job), not an exporter speaking for a
    whole cluster (Prometheus gives that exporter's address to every series that carries no instance of its own)."""
    inst = labels.get("instance", "")
    return inst.endswith(":9100") or labels.get("job", "") in NODE_JOBS or inst.count(":") == 0


def host_of(labels: dict[str, str]) -> str | None:
    for key in HOST_LABELS:
        v = labels.get(key)
        if v and (key != "instance" or node_instance(labels)):
            return v.rsplit(":", 1)[0] if key == "instance" and v.count(":") == 1 else v
    return None


def _vals(s: MetricSeries) -> list[float]:
    return [v for _, v in s.values]


def _finite(vals: Sequence[float]) -> list[float]:
    return [v for v in vals if math.isfinite(v)]


def _increase(s: MetricSeries) -> float:
    v = _finite(_vals(s))
    if len(v) < 2:
        return 0.0
    # Counter semantics: count resets as a restart from zero.
    inc = 0.0
    for a, b in itertools.pairwise(v):
        inc += b - a if b >= a else b
    return inc


def _first_ts(s: MetricSeries, pred: object) -> float | None:
    for ts, v in s.values:
        if callable(pred) and pred(v):
            return ts
    return None


def _first_rise(s: MetricSeries) -> float | None:
    vals = s.values
    for (_, a), (ts, b) in itertools.pairwise(vals):
        if math.isfinite(a) and math.isfinite(b) and b > a:
            return ts
    return None


_THERMAL_BITS = 0x08 | 0x20 | 0x40 | 0x80
# A condition that already held at the start of the window is probably an older incident's leftover
# (dcgm-exporter holds the last Xid; a drained node's port stays down): it counts for much less.
STALE_FACTOR = 0.2


# A series whose first sample comes this long after the window's start appeared during it (a new Xid label set).
NEW_SERIES_SECONDS = 120.0
# A GPU silent this much longer than its node's other GPUs has vanished (dcgm-exporter scrapes every 15-30 s).
VANISHED_SECONDS = 120.0
VANISHED_FIELDS = 3
# Host memory: available down to 2 % of what it was in the window, or tasks stalled on memory for 5 s (PSI)
MEM_EXHAUSTED = 0.02
MEM_STALL_SECONDS = 5.0


def _stale(s: MetricSeries, pred: Callable[[float], bool], start: float | None) -> bool:
    vals = _finite(_vals(s))
    if start is not None and s.values and s.values[0][0] - start >= NEW_SERIES_SECONDS:
        return False
    return len(vals) >= 2 and all(pred(v) for v in vals)


def _rules_for(i: int, s: MetricSeries, start: float | None = None) -> list[MetricHit]:
    name, vals = s.name, _vals(s)
    fin = _finite(vals)
    out: list[MetricHit] = []

    def hit(
        cause: str,
        weight: float,
        rule: str,
        detail: str,
        onset: float | None,
        holds: Callable[[float], bool] | None = None,
    ) -> None:
        if holds is not None and _stale(s, holds, start):
            weight, detail = weight * STALE_FACTOR, detail + " (already so at the start of the window)"
        out.append(MetricHit(i, cause, weight, rule, detail, onset))

    if not vals:
        return out
    if name in ("DCGM_FI_DEV_XID_ERRORS", "DCGM_FI_DEV_XID_ERROR", "DCGM_EXP_XID_ERRORS_COUNT"):
        code_s = s.labels.get("err_code") or s.labels.get("xid")
        codes = {int(code_s)} if code_s and code_s.isdigit() and int(code_s) > 0 else set()
        if name != "DCGM_EXP_XID_ERRORS_COUNT":
            codes |= {int(v) for v in fin if v > 0}
        for code in sorted(codes):
            mapped = xid_cause(code)
            if mapped and (name != "DCGM_EXP_XID_ERRORS_COUNT" or max(fin, default=0) > 0):
                hit(
                    mapped[0],
                    mapped[1],
                    f"xid-{code}-metric",
                    f"{name} reports Xid {code}",
                    _first_ts(s, lambda v: v > 0),
                    holds=lambda v: v > 0,
                )
    elif name in (
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
        "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL",
        "DCGM_FI_DEV_RETIRED_DBE",
        "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
    ):
        if _increase(s) > 0:
            hit("gpu_memory_error", 11, "ecc-dbe-rising", f"{name} rose by {_increase(s):g}", _first_rise(s))
    elif name in ("DCGM_FI_DEV_ROW_REMAP_FAILURE", "DCGM_FI_DEV_ROW_REMAP_FAILED"):
        if max(fin, default=0) > 0:
            hit(
                "gpu_memory_error",
                12,
                "row-remap-failure",
                f"{name} = 1",
                _first_ts(s, lambda v: v > 0),
                holds=lambda v: v > 0,
            )
    elif name == "DCGM_FI_DEV_ROW_REMAP_PENDING":
        if max(fin, default=0) > 0:
            hit(
                "gpu_memory_error",
                7,
                "row-remap-pending",
                f"{name} = 1",
                _first_ts(s, lambda v: v > 0),
                holds=lambda v: v > 0,
            )
    elif name.startswith("DCGM_FI_DEV_NVLINK_") and "ERROR" in name:
        inc = _increase(s)
        if inc > 0:
            hit(
                "nvlink_error", 9 if inc >= 10 else 6, "nvlink-errors-rising", f"{name} rose by {inc:g}", _first_rise(s)
            )
    elif name in ("DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_GPU_TEMP_CELSIUS"):
        peak = max(fin, default=0)
        if peak >= 87:
            hit(
                "gpu_thermal",
                9,
                "gpu-temp-high",
                f"{name} peaked at {celsius(peak)}",
                _first_ts(s, lambda v: v >= 87),
                holds=lambda v: v >= 87,
            )
        elif peak >= 83:
            hit(
                "gpu_thermal",
                5,
                "gpu-temp-warm",
                f"{name} peaked at {celsius(peak)}",
                _first_ts(s, lambda v: v >= 83),
                holds=lambda v: v >= 83,
            )
    elif name in ("DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", "DCGM_FI_DEV_CLOCKS_EVENT_REASONS"):
        if any(int(v) & _THERMAL_BITS for v in fin):
            hit(
                "gpu_thermal",
                9,
                "thermal-throttle-bits",
                f"{name} has thermal/power-brake bits set",
                _first_ts(s, lambda v: math.isfinite(v) and int(v) & _THERMAL_BITS),
            )
    elif name == "DCGM_FI_DEV_THERMAL_VIOLATION":  # power-cap time is normal under load; thermal is not
        if _increase(s) > 0:
            hit("gpu_thermal", 7, "throttle-violation-time", f"{name} rising", _first_rise(s))
    elif name == "node_infiniband_state_id":
        if fin and fin[-1] != 4:
            hit(
                "network_fabric",
                10,
                "ib-port-not-active",
                f"port state {fin[-1]:g} (4 = ACTIVE)",
                _first_ts(s, lambda v: v != 4),
                holds=lambda v: v != 4,
            )
    elif name == "node_infiniband_physical_state_id":
        if fin and fin[-1] != 5:
            hit(
                "network_fabric",
                9,
                "ib-phys-not-linkup",
                f"physical state {fin[-1]:g} (5 = LinkUp)",
                _first_ts(s, lambda v: v != 5),
                holds=lambda v: v != 5,
            )
    elif name == "node_infiniband_link_downed_total":
        if _increase(s) > 0:
            hit("network_fabric", 10, "ib-link-downed", f"link_downed +{_increase(s):g}", _first_rise(s))
    elif name in (
        "node_infiniband_symbol_error_total",
        "node_infiniband_link_error_recovery_total",
        "node_infiniband_port_errors_received_total",
        "node_infiniband_local_link_integrity_errors_total",
    ):
        inc = _increase(s)
        if inc >= 5:
            hit("network_fabric", 6, "ib-errors-rising", f"{name} +{inc:g}", _first_rise(s))
    elif name in ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"):
        peak = max(fin, default=0)
        if peak >= 0.95:
            hit(
                "inference_overload",
                10,
                "kv-cache-full",
                f"{name} reached {peak:.2f}",
                _first_ts(s, lambda v: v >= 0.95),
            )
    elif name == "vllm:num_requests_waiting":
        if fin and fin[-1] >= 10 and fin[-1] > 2 * fin[0]:
            hit("inference_overload", 7, "queue-growing", f"waiting requests {fin[0]:g} -> {fin[-1]:g}", _first_rise(s))
    elif name in ("vllm:num_preemptions_total", "vllm:num_preemptions"):
        if _increase(s) > 0:
            hit("inference_overload", 8, "sequences-preempted", f"{name} +{_increase(s):g}", _first_rise(s))
    elif name == "node_vmstat_oom_kill":
        if _increase(s) > 0:
            hit("host_oom", 11, "oom-kill-counter", f"oom_kill +{_increase(s):g}", _first_rise(s))
    elif name == "node_memory_MemAvailable_bytes":
        top = max(fin, default=0)
        if top > 0 and min(fin) <= MEM_EXHAUSTED * top:
            hit(
                "host_oom",
                7,
                "memory-exhausted",
                f"available memory fell from {human_bytes(top)} to {human_bytes(min(fin))}",
                _first_ts(s, lambda v: v <= MEM_EXHAUSTED * top),
            )
    elif name == "node_pressure_memory_stalled_seconds_total":
        if _increase(s) >= MEM_STALL_SECONDS:
            hit("host_oom", 6, "memory-pressure", f"tasks stalled on memory for {_increase(s):.3g} s", _first_rise(s))
    elif name == "node_filesystem_avail_bytes":
        if fin and min(fin) <= 0:
            hit(
                "storage_io",
                10,
                "filesystem-full",
                f"{s.labels.get('mountpoint', '')} has no space left",
                _first_ts(s, lambda v: v <= 0),
                holds=lambda v: v <= 0,
            )
    elif name == "node_filesystem_device_error":
        if max(fin, default=0) > 0:
            hit("storage_io", 7, "filesystem-device-error", f"{s.labels.get('mountpoint', '')} device error", None)
    elif name == "up":
        if fin and fin[-1] == 0:
            hit(
                "node_failure",
                8,
                "target-down",
                f"{s.labels.get('instance', '')} up == 0",
                _first_ts(s, lambda v: v == 0),
                holds=lambda v: v == 0,
            )
    elif "loss" in name.lower() and any(not math.isfinite(v) for v in vals):
        hit(
            "numerical_divergence",
            11,
            "loss-not-finite",
            f"{name} became NaN/Inf",
            _first_ts(s, lambda v: not math.isfinite(v)),
        )
    return out


def _gpu_util_hang(metrics: Sequence[MetricSeries]) -> list[MetricHit]:
    """All GPUs that were busy drop to ~0 together: the collective-hang shape."""
    util = [(i, s) for i, s in enumerate(metrics) if s.name == "DCGM_FI_DEV_GPU_UTIL" and len(s.values) >= 4]
    if len(util) < 2:
        return []
    dropped = []
    for i, s in util:
        v = _finite(_vals(s))
        head, tail = v[: len(v) // 2], v[-2:]
        if head and sum(head) / len(head) >= 50 and tail and max(tail) <= 5:
            dropped.append(i)
    if len(dropped) == len(util):
        return [
            MetricHit(i, "collective_hang", 5, "all-gpus-idle", "every busy GPU of the job fell to 0%", None)
            for i in dropped
        ]
    return []


STEP_SERIES = ("astro_train_step_seconds", "train_step_seconds")
DATA_WAIT_SERIES = ("astro_train_data_wait_seconds", "train_data_wait_seconds")


def data_wait_pairs(metrics: Sequence[MetricSeries]) -> list[tuple[int, MetricSeries, MetricSeries]]:
    """(index, data-wait series, step-time series of the same labels): the workloads' own step metrics."""
    steps = {tuple(sorted(s.labels.items())): s for s in metrics if s.name in STEP_SERIES}
    return [
        (i, s, steps[key])
        for i, s in enumerate(metrics)
        if s.name in DATA_WAIT_SERIES and (key := tuple(sorted(s.labels.items()))) in steps
    ]


def _data_wait(metrics: Sequence[MetricSeries]) -> list[MetricHit]:
    """The workloads' own step metrics: most of each step spent waiting for input data."""
    out = []
    for i, s, step in data_wait_pairs(metrics):
        d, st = _finite(_vals(s)), _finite(_vals(step))
        tail = list(zip(d, st, strict=False))[-4:]
        if tail and all(b > 0 and a / b >= 0.5 for a, b in tail):
            out.append(
                MetricHit(
                    i,
                    "dataloader_bottleneck",
                    9,
                    "data-wait-dominates-step",
                    f"data wait is {tail[-1][0] / tail[-1][1]:.0%} of the step time",
                    None,
                )
            )
    return out


def _fb_full(metrics: Sequence[MetricSeries]) -> list[MetricHit]:
    free = {tuple(sorted(s.labels.items())): s for s in metrics if s.name == "DCGM_FI_DEV_FB_FREE"}
    out = []
    for i, s in enumerate(metrics):
        if s.name != "DCGM_FI_DEV_FB_USED":
            continue
        pair = free.get(tuple(sorted(s.labels.items())))
        if pair is None:
            continue
        fr = dict(pair.values)
        full = [u / (u + fr[t]) for t, u in s.values if t in fr and u + fr[t] > 0 and math.isfinite(u)]
        if any(x >= 0.98 for x in full):
            out.append(MetricHit(i, "gpu_oom", 7, "framebuffer-full", "framebuffer used ~= total", None))
    return out


def _gpu_vanished(metrics: Sequence[MetricSeries]) -> list[MetricHit]:
    """A GPU whose DCGM series all stop while its peers keep reporting the same fields: it left the bus.

    Series are grouped by GPU, field and job: with job mapping (`hpc_job`) a GPU's series change label set when a
    job takes or leaves it, so only the job's other GPUs on the node are its peers (they keep running, this one is
    gone); without job labels every other GPU of the node is. A whole node going silent is the node, not a GPU.
    """
    # (host, gpu) -> job label -> field -> (last timestamp, series index)
    last: dict[tuple[str, str], dict[str, dict[str, tuple[float, int]]]] = {}
    for i, s in enumerate(metrics):
        host, gpu = host_of(s.labels), s.labels.get("gpu")
        if not s.name.startswith("DCGM_") or host is None or gpu is None or not s.values:
            continue
        fields = last.setdefault((host, gpu), {}).setdefault(s.labels.get("hpc_job", ""), {})
        t = s.values[-1][0]
        if s.name not in fields or t > fields[s.name][0]:
            fields[s.name] = (t, i)
    jobs_on = {h for (h, _), by_job in last.items() if any(by_job.keys() - {""})}
    out = []
    for (host, gpu), by_job in last.items():
        end, _, i, job = max((t, bool(j), i, j) for j, f in by_job.items() for t, i in f.values())
        if host in jobs_on and not job:
            continue  # an idle GPU's series end when a job takes it
        behind = 0
        for name in by_job[job]:
            peers = [
                pj[job][name][0]
                for (h, g), pj in last.items()
                if h == host and g != gpu and job in pj and name in pj[job]
            ]
            behind += bool(peers) and min(peers) - end >= VANISHED_SECONDS
        if behind >= VANISHED_FIELDS:
            when = datetime.fromtimestamp(end, UTC).strftime("%H:%M:%S")
            out.append(
                MetricHit(
                    i,
                    "gpu_hardware_fault",
                    9,
                    "gpu-vanished",
                    f"GPU {gpu} stopped reporting at {when} while its peers kept reporting",
                    end,
                )
            )
    return out


def metric_hits(metrics: Sequence[MetricSeries]) -> list[MetricHit]:
    firsts = [s.values[0][0] for s in metrics if s.values]
    start = min(firsts) if firsts else None
    hits = [h for i, s in enumerate(metrics) for h in _rules_for(i, s, start)]
    hits += _gpu_vanished(metrics)
    hits += _gpu_util_hang(metrics)
    hits += _fb_full(metrics)
    hits += _data_wait(metrics)
    return hits
