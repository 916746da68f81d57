"""The alert's subject: evidence about the alerted node or job counts in full, evidence from elsewhere less.

Two incidents often share a log window (another job failing on another node at the same minute). When the alert
names a node or a job, a log finding whose source is a different node or job is most likely the other incident's,
so its weight is discounted — kept, not dropped: it may still be all there is.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING

from hpcmind.contract import EvidenceBundle, LogLine

from .metric_rules import host_of

if TYPE_CHECKING:
    from .findings import Finding

JOB_LABELS = ("job_id", "jobid", "slurm_job_id", "slurmjobid", "hpc_job", "job_id_slurm")
SOURCE_NODE = re.compile(r"^(?:node|host)/([^/]+)")
SOURCE_JOB = re.compile(r"^(?:job|slurm)/(\d+)")
# a kernel line can name the Slurm job through its memory cgroup (oom_memcg=/slurm/uid_1000/job_42)
LINE_JOB = re.compile(r"\b(?:oom_memcg|task_memcg)=\S*?/job_(\d+)")
# a controller line (slurmctld) is about the jobs and nodes it names
LINE_JOBS = re.compile(r"\bJobId=(\d+)|\bJOB (\d+)\b")
# a host name carries a digit (gn001, dgx-a12, nid00006): "Node failure", "node is down" name no host
LINE_NODES = re.compile(r"\b(?:Nodes?|node|NodeList=) ?([A-Za-z][\w.\-\[\],]*\d[\w.\-\[\],]*)")
ELSEWHERE = 0.3


def subject(bundle: EvidenceBundle) -> tuple[set[str], set[str]]:
    """(nodes, jobs) the alert is about, with the nodes of its job."""
    nodes: set[str] = set()
    jobs: set[str] = set()
    if bundle.alert is not None:
        labels = bundle.alert.labels
        if host := host_of(labels):
            nodes.add(host)
        nodes |= {n for n in labels.get("nodes", "").split(",") if n}
        jobs |= {labels[k] for k in JOB_LABELS if labels.get(k)}
    if bundle.job is not None and (jobs or nodes):
        if bundle.job.id:
            jobs.add(bundle.job.id)
        nodes |= set(bundle.job.nodes or [])
    return nodes, jobs


def kernel_jobs(logs: list[LogLine]) -> dict[int, str]:
    """Log positions whose kernel report names a job's cgroup: the report's lines share source and timestamp."""
    named = {(e.source, e.ts): m[1] for e in logs if (m := LINE_JOB.search(e.line))}
    return {
        i: named[(e.source, e.ts)]
        for i, e in enumerate(logs)
        if (e.source, e.ts) in named and (e.ts is not None or LINE_JOB.search(e.line))  # no time: only that line
    }


def elsewhere(source: str | None, nodes: set[str], jobs: set[str], job: str | None = None) -> bool:
    if not source:
        return False
    if job and jobs:
        return job not in jobs
    if (m := SOURCE_JOB.match(source)) and jobs:
        return m[1] not in jobs
    if (m := SOURCE_NODE.match(source)) and nodes:
        return m[1] not in nodes
    return False


def names_elsewhere(line: str | None, nodes: set[str], jobs: set[str]) -> bool:
    """A line from a shared source (the controller's log) that names only other jobs, or only other nodes."""
    if not line:
        return False
    named_jobs = {a or b for a, b in LINE_JOBS.findall(line)}
    if named_jobs and jobs:
        return not named_jobs & jobs
    named_nodes = set(LINE_NODES.findall(line))
    if named_nodes and nodes and not any(c in n for n in named_nodes for c in "[,"):  # a hostlist: can't tell
        return not named_nodes & nodes
    return False


def focus(bundle: EvidenceBundle, findings: list[Finding], line_jobs: dict[int, str] | None = None) -> list[Finding]:
    """`line_jobs`: log positions (as in the findings' `order`) that name the job they are about."""
    nodes, jobs = subject(bundle)
    if not nodes and not jobs:
        return findings
    line_jobs = line_jobs or {}
    return [replace(f, weight=f.weight * ELSEWHERE) if _elsewhere(f, nodes, jobs, line_jobs) else f for f in findings]


def _elsewhere(f: Finding, nodes: set[str], jobs: set[str], line_jobs: dict[int, str]) -> bool:
    if f.order < 0:  # alerts, the job record, metrics: already about the subject
        return False
    if f.source and (SOURCE_JOB.match(f.source) or SOURCE_NODE.match(f.source)):
        return elsewhere(f.source, nodes, jobs, line_jobs.get(f.order))
    return names_elsewhere(f.line, nodes, jobs)
