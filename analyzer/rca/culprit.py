"""Where it broke: node, GPU and job, taken only from the evidence behind the chosen root cause."""

from __future__ import annotations

import re
from collections.abc import Sequence

from hpcmind.contract import Culprit, EvidenceBundle, LogLine

from .findings import MAX_LINES, Finding
from .focus import JOB_LABELS, SOURCE_JOB, SOURCE_NODE
from .gpu_ids import GpuIds, gpu_ids, host_of_source, job_of_source, rank_of
from .localize import first_deviator
from .metric_rules import host_of
from .xid import parse_xids

_LINE_NODE = [
    # the node slurmstepd runs on; for NODE FAILURE that is a survivor, not the failed node
    re.compile(r"\b(?:JOB|STEP) [\d.]+ ON (\S+) CANCELLED(?!.*NODE FAILURE)"),
    re.compile(r"\bslurmstepd-([\w.-]+):"),
    re.compile(r"^\w{3} +\d+ [\d:]+ ([\w.-]+) kernel:"),
    re.compile(r"^([\w.-]+): kern(?:el)?:"),
    re.compile(r"\bNodes? ([\w.\-\[\],]+) not responding"),
    re.compile(r"\bNode failure on ([\w.-]+)"),
    re.compile(r"\bon failed node ([\w.-]+)"),
    re.compile(r"^([\w-]+): Reason="),
    re.compile(r"\bsrun: error: ([\w.-]+): task"),
    re.compile(r"^\s*host\s*:\s*([\w.-]+)\s*$"),  # torchrun's ChildFailedError summary
    re.compile(r"\bRemote daemon: .* on node ([\w.-]+)"),  # Open MPI's lost daemon, not the HNP's node
    re.compile(r"\bCaught signal \w+ on ([\w.-]+): this job is"),  # submitit, on the job's node
    re.compile(r"\bMemory on the node \(IP: ([\w.:-]+)"),  # Ray's memory monitor
    re.compile(r"\bnode name: ([\w.:-]+) has been marked dead"),  # Ray's NodeDiedError
]
_LINE_JOB = [
    re.compile(r"\bJOB (\d+) ON\b"),
    re.compile(r"\bSTEP (\d+)\.\w+ ON\b"),
    re.compile(r"\bStepId=(\d+)"),
    re.compile(r"\bJobId=(\d+)"),
    re.compile(r"\bJobEnvironment\(job_id=(\d+)"),  # submitit's job environment
    re.compile(r"\bRequeued job (\d+)"),  # submitit on preemption or timeout
]
_LINE_GPU = [
    re.compile(r"\bGPU (\d{1,2})(?:;| has a total capacity)"),
    re.compile(r"\bfrom GPU(\d{1,2}) GSP"),
    re.compile(r"\bGPU (?:index )?(\d{1,2})\b(?! ?(?:GB|GiB|MiB|%))"),
]
# causes that sit on one GPU: only for these does the failing rank stand for its GPU
GPU_SCOPED = frozenset({"gpu_hardware_fault", "gpu_memory_error", "nvlink_error", "gpu_thermal", "gpu_oom"})
# nvidia-smi's table gives a GPU two rows: "|   3  NVIDIA A100 ... |" then "| N/A   92C    P0 ... |"
_SMI_TABLE_INDEX = re.compile(r"^\|\s+(\d{1,2})\s+\S")
_LINE_PCI = re.compile(r"\bGPU (?:at )?(?:PCI:)?([0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2})")
# the driver prints one message over several `NVRM:` lines; the GPU's address is on the first
_NVRM_CONTINUED = re.compile(r"^\s+NVRM: ")
# NCCL's prefix `host:pid:tid [dev]`: the CUDA device of the process that logged the line
_NCCL_DEV = re.compile(r"^\s*(?:\[[^\]]*\]\s*)?[A-Za-z][\w.-]*:\d+:\d+ \[(\d{1,2})\]")


def _first(values: Sequence[str | None]) -> str | None:
    return next((v for v in values if v), None)


def locate(bundle: EvidenceBundle, support: Sequence[Finding]) -> Culprit:
    alert_labels = bundle.alert.labels if bundle.alert else {}
    job = bundle.job

    # the alert's own labels first, then the series of this cause that deviated first, then the rest
    first_host, first_gpu = first_deviator(bundle.metrics, sorted({f.series for f in support if f.series is not None}))
    alert_host = host_of(alert_labels)
    same_node = alert_host is None or first_host == alert_host
    nodes: list[str | None] = [alert_host, first_host]
    gpus: list[str | None] = [alert_labels.get("gpu"), first_gpu if same_node else None]
    jobs: list[str | None] = [job.id if job else None] + [alert_labels.get(k) for k in JOB_LABELS]
    ids = gpu_ids(bundle)
    ranks: list[tuple[str | None, int]] = []  # (job, rank) of the lines behind a GPU-scoped cause
    scanned = bundle.logs[-MAX_LINES:]  # the lines finding orders index

    for f in support:
        if f.labels:
            nodes.append(host_of(f.labels))
            gpus.append(f.labels.get("gpu"))
            jobs += [f.labels.get(k) for k in JOB_LABELS]
        src = f.source or ""
        if m := SOURCE_NODE.match(src):
            nodes.append(m[1])
        if m := SOURCE_JOB.match(src):
            jobs.append(m[1])
        line = f.line or ""
        nodes += [m[1] for rx in _LINE_NODE if (m := rx.search(line))]
        jobs += [m[1] for rx in _LINE_JOB if (m := rx.search(line))]
        gpus += [_gpu_from_line(line, host_of_source(src), ids)]
        if _NVRM_CONTINUED.match(line) and 0 < f.order <= len(scanned):
            gpus += [_gpu_from_line(e.line, host_of_source(src), ids) for e in _message_head(scanned, f.order - 1)]
        if f.cause in GPU_SCOPED and (m := _NCCL_DEV.match(line)):
            gpus.append(m[1])
        if f.signature == "smi-table-hot" and 0 < f.order <= len(scanned):
            gpus += [m[1] if (m := _SMI_TABLE_INDEX.match(scanned[f.order - 1].line)) else None]
        if f.cause in GPU_SCOPED and (r := rank_of(f.source, f.line)) is not None:
            ranks.append((job_of_source(src), r))
    # the failing rank's GPU: NCCL's init line names its device exactly
    gpus += [ids.of_rank(j, r) for j, r in ranks]
    if job and len(job.nodes) == 1:
        nodes.append(job.nodes[0])
    if support and not _first(nodes):
        nodes += _nodes_in_job_lines(bundle, _first(jobs))
    if support and _first(nodes) and not _first(jobs):
        jobs.append(_job_on_node(bundle, str(_first(nodes))))
    if support and not _first(jobs):
        jobs.append(_job_of_sources(bundle, {f.source for f in support if f.source}))
    # a bus address nothing translated is a last resort: an index named by other evidence is what operators use
    # and the rank's local_rank (torchrun's CUDA device) is a guess that comes after the address
    gpu = (
        _first([g for g in gpus if g and not g.startswith("PCI:")])
        or _first(gpus)
        or _first([ids.local_rank_of(j, r) for j, r in ranks])
        or (str(ranks[0][1]) if ranks and job and len(job.nodes) == 1 else None)  # one node: rank is local rank
    )
    return Culprit(node=_first(nodes), gpu=gpu, job=_first(jobs))


_NCCL_HOST = re.compile(r"^\s*(?:\[[^\]]*\]\s*)?([A-Za-z][\w.-]*):\d+:\d+ \[\d+\]")
_HOST_IN_JOB_LINE = (*_LINE_NODE, _NCCL_HOST)


def _nodes_in_job_lines(bundle: EvidenceBundle, job: str | None) -> list[str | None]:
    """Hosts the job's own lines name (srun, slurmstepd, torchrun's summary, NCCL's host:pid:tid prefix), in
    log order: when the lines behind the diagnosis carry no host, the failing job's lines usually do."""
    out: list[str | None] = []
    for e in bundle.logs:
        src = e.source or ""
        if job and not (src.startswith(f"job/{job}") or f"JobId={job}" in e.line or f"JOB {job} " in e.line):
            continue
        out += [m[1] for rx in _HOST_IN_JOB_LINE if (m := rx.search(e.line))]
    return out


def _job_on_node(bundle: EvidenceBundle, node: str) -> str | None:
    """The one job the evidence shows on the failed node: its own lines name the host (srun, torchrun's
    summary, NCCL's prefix) or its DCGM series carry the node's name. Two or more: it can't say which."""
    found: set[str] = set()
    for e in bundle.logs:
        src = e.source or ""
        if (m := SOURCE_JOB.match(src)) and any((h := rx.search(e.line)) and h[1] == node for rx in _HOST_IN_JOB_LINE):
            found.add(m[1])
    for series in bundle.metrics:
        if host_of(series.labels) == node:
            found.update(v for k in JOB_LABELS if (v := series.labels.get(k)))
    return found.pop() if len(found) == 1 else None


def _message_head(scanned: Sequence[LogLine], i: int) -> list[LogLine]:
    """The earlier lines of the driver message that line `i` continues, nearest first (at most 4 back)."""
    out: list[LogLine] = []
    for j in range(i - 1, max(-1, i - 5), -1):
        out.append(scanned[j])
        if not _NVRM_CONTINUED.match(scanned[j].line):
            break
    return out


def _job_of_sources(bundle: EvidenceBundle, sources: set[str]) -> str | None:
    """The one job id the streams behind the diagnosis name (a launcher's log: submitit's `Requeued job 42`).
    A stream naming two or more jobs (a controller's log) does not say which one failed."""
    found = {m[1] for e in bundle.logs if e.source in sources for rx in _LINE_JOB if (m := rx.search(e.line))}
    return found.pop() if len(found) == 1 else None


def _gpu_from_line(line: str, host: str | None, ids: GpuIds) -> str | None:
    pcis = [x.pci for x in parse_xids(line) if x.pci]
    if not pcis and (m := _LINE_PCI.search(line)):
        pcis = ["PCI:" + m[1]]
    if pcis:
        # translate the Xid's PCI address to the index operators use (dcgm-exporter labels, NCCL init lines)
        return ids.of_bus(pcis[0], host) or pcis[0]
    for rx in _LINE_GPU:
        if m := rx.search(line):
            return m[1]
    return None
