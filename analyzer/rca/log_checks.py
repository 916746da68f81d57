"""Numeric checks on log text that a regex alone cannot decide.

Each check reads all lines and returns hits: (line index, root cause, weight, signature name).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence

Hit = tuple[int, str, float, str]

_SMI_TEMP = re.compile(
    r"^\s*(GPU Current Temp|GPU Shutdown Temp|GPU Slowdown Temp|GPU Max Operating Temp|"
    r"Memory Current Temp|Memory Max Operating Temp)\s*:\s*(\d+)\s*C\b"
)
_SMI_TABLE_TEMP = re.compile(r"\|\s*\d+%?\s+(\d{2,3})C\s+P\d+\b|\|\s*N/A\s+(\d{2,3})C\s+P\d+\b")
_DATA_TIME = re.compile(r"\bTime\s+([\d.]+)\s+\(([\d.]+)\)\s+Data\s+([\d.]+)\s+\(([\d.]+)\)")
_KV_DATA = re.compile(r"\bdata(?:_time|_wait|[ _]wait[ _]time|_load(?:ing)?_time)\s*[=:]\s*([\d.]+)", re.IGNORECASE)
# mmcv/mmengine and detectron2 print a bare "time: 1.601, data_time: 1.532"; "\b" keeps "data_time" out.
_KV_STEP = re.compile(r"\b(?:(?:batch|step|iter(?:ation)?)_?)?time\s*[=:]\s*([\d.]+)", re.IGNORECASE)
_VLLM_KV = re.compile(r"(?:GPU )?KV cache usage:\s*([\d.]+)%", re.IGNORECASE)
# vLLM's V0 engine says "Pending", V1 "Waiting"
_VLLM_WAITING = re.compile(r"(?:Waiting|Pending):\s*(\d+)\s*reqs", re.IGNORECASE)
_VLLM_RUNNING = re.compile(r"Running:\s*(\d+)\s*reqs", re.IGNORECASE)


def nvidia_smi_temperature(lines: Sequence[str]) -> list[Hit]:
    vals: dict[str, tuple[int, int]] = {}
    for i, line in enumerate(lines):
        m = _SMI_TEMP.search(line)
        if m:
            vals.setdefault(m[1], (i, int(m[2])))
    hits: list[Hit] = []
    cur = vals.get("GPU Current Temp")
    if cur is not None:
        idx, t = cur
        limits = [v for k, (_, v) in vals.items() if k in ("GPU Max Operating Temp", "GPU Slowdown Temp")]
        near = any(t >= lim - 3 for lim in limits)
        if near or t >= 85:
            hits.append((idx, "gpu_thermal", 10.0, "smi-temp-at-limit"))
        else:
            # Someone pasted the temperature report: the question was about heat.
            hits.append((idx, "gpu_thermal", 3.0, "smi-temperature-report"))
    for i, line in enumerate(lines):
        m = _SMI_TABLE_TEMP.search(line)
        if m and int(m[1] or m[2]) >= 85:
            hits.append((i, "gpu_thermal", 8.0, "smi-table-hot"))
    return hits


_SMI_REMAP_FIELD = re.compile(r"^\s*(Pending|Remapping Failure Occurred|Uncorrectable Error)\s*:\s*(\w+)")
_SMI_DRAM_UNCORR = re.compile(r"^\s*(?:DRAM|SRAM) Uncorrectable\s*:\s*([1-9]\d*)\b")
# The fields of nvidia-smi -q's "Remapped Rows" section follow its header within a few lines.
_REMAP_SECTION_SPAN = 8


def nvidia_smi_memory_health(lines: Sequence[str]) -> list[Hit]:
    """nvidia-smi -q memory-health fields with a bad value (the same report on a healthy GPU says 0 / No)."""
    hits: list[Hit] = []
    section_at = -(_REMAP_SECTION_SPAN + 1)
    for i, line in enumerate(lines):
        if line.strip() == "Remapped Rows":
            section_at = i
            continue
        m = _SMI_DRAM_UNCORR.search(line)
        if m:
            hits.append((i, "gpu_memory_error", 8.0, "smi-uncorrectable-ecc-count"))
        f = _SMI_REMAP_FIELD.search(line)
        if not f or i - section_at > _REMAP_SECTION_SPAN:
            continue
        field, value = f[1], f[2]
        if field == "Remapping Failure Occurred" and value == "Yes":
            hits.append((i, "gpu_memory_error", 11.0, "smi-row-remap-failed"))
        elif field == "Pending" and value == "Yes":
            hits.append((i, "gpu_memory_error", 9.0, "smi-row-remap-pending"))
        elif field == "Uncorrectable Error" and value.isdigit() and int(value) > 0:
            hits.append((i, "gpu_memory_error", 8.0, "smi-remapped-uncorrectable"))
    return hits


_SMI_CSV_REASON = re.compile(r"clocks_(?:throttle|event)_reasons\.(\w+)")
_HOT_REASONS = ("hw_thermal_slowdown", "sw_thermal_slowdown", "hw_slowdown", "hw_power_brake_slowdown")
# value rows read under one header: one per GPU of the largest nodes
_CSV_MAX_ROWS = 16


def nvidia_smi_csv_throttle(lines: Sequence[str]) -> list[Hit]:
    """`nvidia-smi --query-gpu=clocks_event_reasons.* --format=csv`: a header row of field names, then one row
    of values per GPU; a thermal or hardware slowdown reason whose value is Active."""
    hits: list[Hit] = []
    for i, line in enumerate(lines[:-1]):
        if not _SMI_CSV_REASON.search(line):
            continue
        fields = [f.strip() for f in line.split(",")]
        for j in range(i + 1, min(i + 1 + _CSV_MAX_ROWS, len(lines))):
            values = [v.strip() for v in lines[j].split(",")]
            if len(values) != len(fields):
                break
            for name, value in zip(fields, values, strict=True):
                m = _SMI_CSV_REASON.search(name)
                if m and m[1] in _HOT_REASONS and value == "Active":
                    hits.append((j, "gpu_thermal", 10.0, "smi-csv-slowdown-active"))
    return hits


def data_wait_ratio(lines: Sequence[str]) -> list[Hit]:
    hits: list[Hit] = []
    for i, line in enumerate(lines):
        m = _DATA_TIME.search(line)
        if m:
            time_avg, data_avg = float(m[2]), float(m[4])
            if time_avg > 0 and data_avg / time_avg >= 0.5:
                hits.append((i, "dataloader_bottleneck", 9.0, "data-time-dominates"))
            continue
        d, s = _KV_DATA.search(line), _KV_STEP.search(line)
        if d and s and float(s[1]) > 0 and float(d[1]) / float(s[1]) >= 0.5:
            hits.append((i, "dataloader_bottleneck", 9.0, "data-wait-dominates"))
    return hits


def vllm_saturation(lines: Sequence[str]) -> list[Hit]:
    hits: list[Hit] = []
    for i, line in enumerate(lines):
        m = _VLLM_KV.search(line)
        if m and float(m[1]) >= 90.0:
            hits.append((i, "inference_overload", 9.0, "vllm-kv-cache-full"))
        w, r = _VLLM_WAITING.search(line), _VLLM_RUNNING.search(line)
        # a queue behind an idle engine (almost nothing running, cache empty) is a stall, not saturation
        idle = r is not None and int(r[1]) < 4 and (m is None or float(m[1]) < 50.0)
        if w and int(w[1]) >= 10 and not idle:
            hits.append((i, "inference_overload", 6.0, "vllm-requests-waiting"))
    return hits


# The number a dynamic loss scaler reports after "loss scale" (fairseq, apex's "reducing loss scale to", DeepSpeed's
# "Attempted loss scale: X, reducing to Y", Megatron's "loss scale: X"); the last number of the phrase is the new one.
_NUM = r"([0-9]+(?:\.[0-9]*)?(?:e-?\d+)?)"
_LOSS_SCALE = re.compile(rf"loss[ _]?scale\w*[^0-9\n]{{0,40}}?{_NUM}(?:,?\s*reducing to\s*{_NUM})?", re.IGNORECASE)
# Scalers start at 2^16 and halve a few times in the first steps of a healthy run; below 1 even unscaled
# gradients overflow, which is a diverging run, not the warm-up.
_LOSS_SCALE_FLOOR = 1.0
_LOSS_SCALE_DROPS = 3


def loss_scale_collapse(lines: Sequence[str]) -> list[Hit]:
    """A dynamic loss scale halved again and again until it fell below 1: the gradients overflow every step."""
    seq: list[tuple[int, float]] = []
    for i, line in enumerate(lines):
        found = list(_LOSS_SCALE.finditer(line))
        if found:
            seq.append((i, float(found[-1][2] or found[-1][1])))
    drops = sum(b < a for (_, a), (_, b) in itertools.pairwise(seq))
    if drops >= _LOSS_SCALE_DROPS and seq[-1][1] < _LOSS_SCALE_FLOOR:
        return [(seq[-1][0], "numerical_divergence", 8.0, "loss-scale-collapsed")]
    return []


# An inference engine's periodic stats: vLLM ("Running: N reqs ... Waiting|Pending: M reqs ... generation throughput:
# X tokens/s") and SGLang ("#running-req: N ... #queue-req: M ... gen throughput (token/s): X").
_ENGINE_RUNNING = re.compile(r"(?:Running:\s*(\d+)\s*reqs|#running-req:\s*(\d+))", re.IGNORECASE)
_ENGINE_QUEUED = re.compile(r"(?:(?:Waiting|Pending):\s*(\d+)\s*reqs|#queue-req:\s*(\d+))", re.IGNORECASE)
_ENGINE_GEN = re.compile(
    r"(?:generation throughput:\s*([\d.]+)\s*tokens/s|gen throughput \(token/s\):\s*([\d.]+))", re.IGNORECASE
)
_STALL_QUEUE = 5
_STALL_REPORTS = 2


def engine_stalled(lines: Sequence[str]) -> list[Hit]:
    """Requests queue and grow while the engine runs none and generates nothing, report after report: its scheduler
    stopped (an engine bug or a request it can never admit), not a full server."""
    run = 0
    last = -1
    queued_before = -1
    for i, line in enumerate(lines):
        r, q, g = _ENGINE_RUNNING.search(line), _ENGINE_QUEUED.search(line), _ENGINE_GEN.search(line)
        if not (r and q):
            continue
        running, queued = int(r[1] or r[2]), int(q[1] or q[2])
        gen = float(g[1] or g[2]) if g else 0.0
        if running == 0 and queued >= _STALL_QUEUE and gen == 0.0 and queued >= queued_before:
            run += 1
            last = i
        elif running == 0 and queued >= _STALL_QUEUE and queued >= queued_before:
            run = max(run, 1)  # the first report of a stall still shows the last tokens leaving
            last = i
        else:
            run = 0
        queued_before = queued
    return [(last, "software_error", 7.0, "inference-engine-stalled")] if run >= _STALL_REPORTS else []


LOG_CHECKS: tuple[Callable[[Sequence[str]], list[Hit]], ...] = (
    loss_scale_collapse,
    engine_stalled,
    nvidia_smi_temperature,
    nvidia_smi_memory_health,
    nvidia_smi_csv_throttle,
    data_wait_ratio,
    vllm_saturation,
)
