"""The alert's subject: evidence about the alerted node or job counts in full, evidence from elsewhere less.

Two incidents often share a log window (another job failing on another node at the same minute). When the alert
names a node or a job, a log finding whose source is a different node or job is most likely the other incident's,
so its weight is discounted — kept, not dropped: it may still be all there is.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING

from hpcmind.contract import EvidenceBundle

from .metric_rules import host_of

if TYPE_CHECKING:
    from .findings import Finding

JOB_LABELS = ("job_id", "jobid", "slurm_job_id", "slurmjobid", "hpc_job", "job_id_slurm")
SOURCE_NODE = re.compile(r"^(?:node|host)/([^/]+)")
SOURCE_JOB = re.compile(r"^(?:job|slurm)/(\d+)")
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


def elsewhere(source: str | None, nodes: set[str], jobs: set[str]) -> bool:
    if not source:
        return False
    if (m := SOURCE_JOB.match(source)) and jobs:
        return m[1] not in jobs
    if (m := SOURCE_NODE.match(source)) and nodes:
        return m[1] not in nodes
    return False


def focus(bundle: EvidenceBundle, findings: list[Finding]) -> list[Finding]:
    nodes, jobs = subject(bundle)
    if not nodes and not jobs:
        return findings
    return [
        replace(f, weight=f.weight * ELSEWHERE) if f.order >= 0 and elsewhere(f.source, nodes, jobs) else f
        for f in findings
    ]
