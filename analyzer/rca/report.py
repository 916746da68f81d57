"""Human text for a diagnosis: summary, explanation and remediation steps."""

from __future__ import annotations

from collections.abc import Sequence

from hpcmind.contract import Culprit
from hpcmind.taxonomy import UNKNOWN, root_causes

HARDWARE = {"gpu_hardware_fault", "gpu_memory_error", "nvlink_error", "gpu_thermal", "network_fabric", "node_failure"}
RESTARTABLE = HARDWARE | {"collective_hang", "storage_io", "preemption", "walltime_exceeded", "host_oom"}


def where(c: Culprit) -> str:
    parts = []
    if c.gpu is not None:
        parts.append(f"GPU {c.gpu}")
    if c.node:
        parts.append(f"on {c.node}" if parts else c.node)
    if c.job:
        parts.append(f"(job {c.job})")
    return " ".join(parts)


def summary(cause: str, culprit: Culprit, lead: str | None) -> str:
    if cause == UNKNOWN:
        return "No root cause could be established from the evidence."
    rc = root_causes()[cause]
    loc = where(culprit)
    text = rc.summary[0].upper() + rc.summary[1:]
    text += f" — {loc}" if loc else ""
    if lead:
        text += f". First sign: {lead[:160]}"
    return text + ("" if text.endswith(".") else ".")


def explanation(cause: str, signatures: Sequence[str], runner_up: str | None, missing: Sequence[str]) -> str:
    if cause == UNKNOWN:
        text = "None of the documented signatures matched strongly enough to name a root cause."
    else:
        rc = root_causes()[cause]
        text = (
            f"The evidence matches the signatures of {cause} ({', '.join(signatures[:5])}): {rc.summary}. "
            f"Typical evidence for this cause: {'; '.join(rc.evidence[:3])}."
        )
        if runner_up:
            text += f" {runner_up} was considered but its signals are weaker or are consequences of this fault."
    if missing:
        text += f" Missing evidence: {', '.join(missing)}."
    return text


def remediation(cause: str, culprit: Culprit) -> list[str]:
    if cause == UNKNOWN:
        return [
            "Collect the kernel log (dmesg -T), the job's stderr and `scontrol show job` for the affected job",
            "Check DCGM and node_exporter dashboards around the alert time",
        ]
    steps: list[str] = []
    if cause in HARDWARE and culprit.node:
        steps.append(
            f'Drain {culprit.node}: scontrol update nodename={culprit.node} state=drain reason="hpcmind:{cause}"'
        )
    steps += [s.strip() for s in root_causes()[cause].remediation.split(",") if s.strip()]
    if cause in RESTARTABLE and culprit.job:
        steps.append(f"Requeue job {culprit.job} from its last checkpoint (scontrol requeue {culprit.job})")
    return steps
