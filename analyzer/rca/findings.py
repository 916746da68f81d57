"""Turn an evidence bundle into findings: each a root cause, a weight and the verbatim evidence."""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass, field

from hpcmind.contract import EvidenceBundle, JobEvidence, LogLine
from hpcmind.taxonomy import root_cause_ids

from .facts import clock_seconds, exit_signal
from .focus import focus, kernel_jobs
from .log_checks import LOG_CHECKS
from .metric_rules import host_of, metric_hits
from .signatures import SIGNATURES
from .xid import SYMPATHETIC, parse_xids, xid_cause

# Lines longer than this are cut before matching (a pasted binary blob must not stall the regexes).
MAX_LINE = 4000
MAX_LINES = 5000


@dataclass(frozen=True)
class Finding:
    cause: str
    weight: float
    signature: str
    evidence: str  # quoted verbatim: "source: line", or a metric/alert description
    order: int  # position in the log (alerts and job come first: -2, -1)
    source: str | None = None
    line: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    series: int | None = None  # index into bundle.metrics, for metric findings


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")

JOB_STATES: dict[str, tuple[str, float]] = {
    "OUT_OF_MEMORY": ("host_oom", 11),
    "TIMEOUT": ("walltime_exceeded", 11),
    "NODE_FAIL": ("node_failure", 11),
    "PREEMPTED": ("preemption", 11),
    "BOOT_FAIL": ("node_failure", 8),
    "DEADLINE": ("walltime_exceeded", 6),
    "FAILED": ("software_error", 2),
}
LIMIT_SLACK_S = 60  # Slurm checks limits every 30 s (its timer) and the kill takes KillWait
JOB_REASONS: dict[str, tuple[str, float]] = {
    "outofmemory": ("host_oom", 9),
    "timelimit": ("walltime_exceeded", 9),
    "nodefail": ("node_failure", 9),
    "nodedown": ("node_failure", 8),
    "preempted": ("preemption", 9),
}


def quote(entry: LogLine) -> str:
    return f"{entry.source}: {entry.line}" if entry.source else entry.line


def _text_findings(
    text: str, order: int, source: str | None, evidence: str, labels: dict[str, str] | None = None
) -> list[Finding]:
    out = []
    for sig in SIGNATURES:
        if sig.pattern.search(text):
            out.append(Finding(sig.cause, sig.weight, sig.name, evidence, order, source, text, labels or {}))
    for x in parse_xids(text):
        mapped = xid_cause(x.code)
        if mapped:
            name = f"xid-{x.code}" + ("-sympathetic" if x.code in SYMPATHETIC else "")
            out.append(Finding(mapped[0], mapped[1], name, evidence, order, source, text, labels or {}))
    return out


# NCCL reports failures at WARN; its INFO lines are progress and fallbacks ("dlerror=libnccl-net.so: cannot open
# shared object file ... using internal implementation") and the "-> 3" call traces under a WARN.
_NCCL_INFO = re.compile(r"\bNCCL INFO\b")


def log_findings(logs: list[LogLine]) -> list[Finding]:
    logs = logs[-MAX_LINES:]
    lines = [e.line[:MAX_LINE] for e in logs]
    out: list[Finding] = []
    for i, (entry, text) in enumerate(zip(logs, lines, strict=True)):
        if not _NCCL_INFO.search(text):
            out += _text_findings(text, i, entry.source, quote(entry))
    for check in LOG_CHECKS:
        for i, cause, weight, name in check(lines):
            out.append(Finding(cause, weight, name, quote(logs[i]), i, logs[i].source, lines[i]))
    return _discount_recovered_links(out, lines)


_LINK_DOWN = re.compile(r"(mlx5_core \S+(?: \S+)?): Link down")
RECOVERED_LINK_WEIGHT = 2.0
# An alert from a rule that names one cause (a DCGM NVLink or ECC counter rising) is direct evidence.
ALERT_ONE_CAUSE = 11.0


def _discount_recovered_links(findings: list[Finding], lines: list[str]) -> list[Finding]:
    """A NIC link that went down and came back up (a flap) is noise, not the fault."""
    out = []
    for f in findings:
        m = _LINK_DOWN.search(f.line or "") if f.cause == "network_fabric" and f.order >= 0 else None
        if m and any(f"{m[1]}: Link up" in ln for ln in lines[f.order + 1 :]):
            f = Finding(
                f.cause,
                min(f.weight, RECOVERED_LINK_WEIGHT),
                f.signature + "-recovered",
                f.evidence + " (the link came back up)",
                f.order,
                f.source,
                f.line,
                f.labels,
                f.series,
            )
        out.append(f)
    return out


def alert_findings(bundle: EvidenceBundle) -> list[Finding]:
    alert = bundle.alert
    if alert is None:
        return []
    labels, ann = alert.labels, alert.annotations
    name = labels.get("alertname", "")
    words = _CAMEL.sub(" ", name)
    parts = [words] + [ann[k] for k in ("summary", "description", "message") if ann.get(k)]
    text = " | ".join(p for p in parts if p)
    evidence = f"alert {name}: {ann.get('summary') or ann.get('description') or ''}".rstrip(": ")
    out = _text_findings(text, -2, "alert", evidence, labels)
    code = labels.get("err_code") or labels.get("xid")
    if code and code.isdigit():
        mapped = xid_cause(int(code))
        if mapped:
            out.append(Finding(mapped[0], mapped[1], f"xid-{code}-label", evidence, -2, "alert", text, labels))
    known = set(root_cause_ids())
    causes = [c.strip() for c in ann.get("hpcmind_causes", "").split(",") if c.strip() in known]
    for c in causes:
        # The rule author's list of candidate causes: a prior, decisive only when it names one cause.
        out.append(
            Finding(
                c,
                ALERT_ONE_CAUSE if len(causes) == 1 else 2.0,
                "alert-hpcmind-causes",
                evidence,
                -2,
                "alert",
                text,
                labels,
            )
        )
    return out


def job_findings(bundle: EvidenceBundle) -> list[Finding]:
    job = bundle.job
    if job is None:
        return []
    out = []
    desc = f"job {job.id or '?'} state={job.state or '?'} exit_code={job.exit_code or '?'} reason={job.reason or '?'}"
    state = (job.state or "").upper().split()[0] if job.state else ""
    state = state.rstrip("+")
    if state in JOB_STATES:
        cause, w = JOB_STATES[state]
        out.append(Finding(cause, w, f"job-state-{state.lower()}", desc, -1, "job"))
    reason = (job.reason or "").replace("_", "").replace(" ", "").lower()
    if reason in JOB_REASONS:
        cause, w = JOB_REASONS[reason]
        out.append(Finding(cause, w, f"job-reason-{reason}", desc, -1, "job"))
    if job.exit_code in ("0:125", "125:0"):
        out.append(Finding("host_oom", 6, "job-exit-oom-marker", desc, -1, "job"))
    if state in ("", "FAILED") and exit_signal(job.exit_code) == signal.SIGTERM and job.time_limit:
        # Slurm ends a job at its limit with SIGTERM (then SIGKILL after KillWait); a job that died on SIGTERM with a
        # limit set and no TIMEOUT word was most likely the limit (a scancel says CANCELLED, a preemption PREEMPTED)
        ran, limit = clock_seconds(job.elapsed), clock_seconds(job.time_limit)
        at_limit = ran is not None and limit is not None and ran >= limit - LIMIT_SLACK_S
        if ran is None or at_limit:
            out.append(Finding("walltime_exceeded", 9 if at_limit else 5, "job-sigterm-at-limit", desc, -1, "job"))
    return out


# The node's host-memory series count every process on it: in a job's incident they speak for the job only if
# the job could be the one killed (an OOM end state, a SIGKILL, or still running); a job that ended otherwise
# while a job beside it was OOM-killed is not that OOM.
HOST_MEMORY_RULES = frozenset({"oom-kill-counter", "memory-exhausted", "memory-pressure"})
ENDED_OTHERWISE = frozenset({"FAILED", "COMPLETED", "TIMEOUT", "CANCELLED", "NODE_FAIL", "PREEMPTED", "DEADLINE"})
KILLED_EXITS = frozenset({"0:9", "9:0", "137:0", "0:137", "0:125", "125:0"})
NOT_THIS_JOB = 0.2


def job_ended_otherwise(job: JobEvidence | None) -> bool:
    """Whether the job's record says it ended by something other than a kill: a node's OOM is then a neighbour's."""
    if job is None or not job.state:
        return False
    state = job.state.upper().split()[0].rstrip("+")
    return state in ENDED_OTHERWISE and (job.exit_code or "") not in KILLED_EXITS


def metric_findings(bundle: EvidenceBundle) -> list[Finding]:
    out = []
    neighbour = job_ended_otherwise(bundle.job)
    for h in metric_hits(bundle.metrics):
        s = bundle.metrics[h.series]
        labels = dict(s.labels)
        sel = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        host = host_of(labels)
        weight, detail = h.weight, h.detail
        if neighbour and h.name in HOST_MEMORY_RULES and bundle.job is not None:
            job = bundle.job
            weight, detail = weight * NOT_THIS_JOB, f"{detail} (job {job.id or '?'} ended {job.state}, not killed)"
        out.append(
            Finding(
                h.cause,
                weight,
                h.name,
                f"{s.name}{{{sel}}}: {detail}",
                -3,
                f"metric/{host or ''}",
                None,
                labels,
                h.series,
            )
        )
    return out


def all_findings(bundle: EvidenceBundle) -> list[Finding]:
    found = alert_findings(bundle) + job_findings(bundle) + log_findings(bundle.logs) + metric_findings(bundle)
    return focus(bundle, found, kernel_jobs(bundle.logs[-MAX_LINES:]))
