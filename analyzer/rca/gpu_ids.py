"""Which GPU index a rank or a PCI address stands for, from what the bundle itself says.

Three sources, most exact first:
- dcgm-exporter labels each series with `gpu` (the NVML index) and `pci_bus_id`;
- NCCL at `NCCL_DEBUG=INFO` prints, per rank, `comm 0x.. rank R nranks N cudaDev D nvmlDev X busId B - Init ...`
  (nvmlDev is the index nvidia-smi and DCGM use; NCCL < 2.18 prints cudaDev only, an ordinal like local_rank);
- torchrun's failure summary names the failing rank's `local_rank`, which torchrun makes the CUDA device
  (an ordinal among the job's visible GPUs: the physical index only when the job holds them from 0, so it
  is the weakest of the three and used only when nothing else names the GPU).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from hpcmind.contract import EvidenceBundle

from .focus import SOURCE_JOB, SOURCE_NODE

_NCCL_INIT = re.compile(
    r"(?P<host>[A-Za-z][\w.-]*):\d+:\d+ \[\d+\] NCCL INFO (?:ncclCommInitRank )?comm 0x[0-9a-fA-F]+ "
    r"rank (?P<rank>\d+) nranks \d+ cudaDev (?P<cuda>\d+)(?: nvmlDev (?P<nvml>\d+))? busId (?P<bus>[0-9a-fA-F]+)\b"
)
_TORCHRUN_RANK = re.compile(r"^\s*rank\s*:\s*(\d+) \(local_rank: (\d+)\)")
_SOURCE_RANK = re.compile(r"^job/\d+/rank(\d+)$")
_LINE_RANK = re.compile(r"^\s*\[rank(\d+)\]:")  # PyTorch >= 2.2 prefixes a rank's stderr lines


def bus_key(pci: str) -> str:
    """'PCI:0000:3b:00', '00000000:3B:00.0', NCCL's '3b000' -> '3b:00' for comparison."""
    if ":" not in pci:  # NCCL packs domain:bus:device.function into hex digits: 0x3b000
        digits = pci.lower().rjust(5, "0")
        return f"{digits[-5:-3]}:{digits[-3:-1]}"
    parts = pci.replace("PCI:", "").split(".")[0].split(":")
    return ":".join(parts[-2:]).lower()


@dataclass
class GpuIds:
    by_bus: dict[tuple[str | None, str], str] = field(default_factory=dict)  # (host, bus) -> index
    # (job, global rank) -> index (NCCL) or local_rank (torchrun); the job is the line's source's, if it names one
    by_rank: dict[tuple[str | None, int], str] = field(default_factory=dict)
    local_rank: dict[tuple[str | None, int], str] = field(default_factory=dict)

    def of_bus(self, pci: str, host: str | None) -> str | None:
        key = bus_key(pci)
        if (host, key) in self.by_bus:
            return self.by_bus[host, key]
        # a host the map does not hold: only an index every host reporting that address agrees on
        found = {g for (_, b), g in self.by_bus.items() if b == key}
        return found.pop() if len(found) == 1 else None

    def of_rank(self, job: str | None, rank: int) -> str | None:
        return _lookup(self.by_rank, job, rank)

    def local_rank_of(self, job: str | None, rank: int) -> str | None:
        return _lookup(self.local_rank, job, rank)


def _lookup(m: dict[tuple[str | None, int], str], job: str | None, rank: int) -> str | None:
    if (job, rank) in m:
        return m[job, rank]
    # lines that name no job, or a rank only one job has
    found = {g for (j, r), g in m.items() if r == rank and (j is None or job is None)}
    return found.pop() if len(found) == 1 else None


def gpu_ids(bundle: EvidenceBundle) -> GpuIds:
    ids = GpuIds()
    for s in bundle.metrics:
        bus_id, gpu = s.labels.get("pci_bus_id"), s.labels.get("gpu")
        if bus_id and gpu:
            ids.by_bus[s.labels.get("Hostname"), bus_key(bus_id)] = gpu
    for e in bundle.logs:
        job = job_of_source(e.source)
        if m := _NCCL_INIT.search(e.line):
            if m["nvml"]:
                ids.by_bus[m["host"], bus_key(m["bus"])] = m["nvml"]
                ids.by_rank[job, int(m["rank"])] = m["nvml"]
            else:  # cudaDev alone is an ordinal among the visible GPUs, as weak as torchrun's local_rank
                ids.local_rank[job, int(m["rank"])] = m["cuda"]
        elif m := _TORCHRUN_RANK.match(e.line):
            ids.local_rank[job, int(m[1])] = m[2]
    return ids


def rank_of(source: str | None, line: str | None) -> int | None:
    """The rank a log line came from: a per-rank source (job/42/rank3) or PyTorch's `[rank3]:` prefix."""
    if source and (m := _SOURCE_RANK.match(source)):
        return int(m[1])
    if line and (m := _LINE_RANK.match(line)):
        return int(m[1])
    return None


def host_of_source(source: str | None) -> str | None:
    return m[1] if source and (m := SOURCE_NODE.match(source)) else None


def job_of_source(source: str | None) -> str | None:
    return m[1] if source and (m := SOURCE_JOB.match(source)) else None
