"""Numeric checks on log text that a regex alone cannot decide.

Each check reads all lines and returns hits: (line index, root cause, weight, signature name).
"""

from __future__ import annotations

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


LOG_CHECKS: tuple[Callable[[Sequence[str]], list[Hit]], ...] = (
    nvidia_smi_temperature,
    nvidia_smi_memory_health,
    nvidia_smi_csv_throttle,
    data_wait_ratio,
    vllm_saturation,
)
