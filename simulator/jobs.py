"""Jobs with Slurm semantics: states, exit codes, reasons, and a priority + first-fit scheduler."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Slurm job states as squeue/sacct print them.
PENDING, RUNNING = "PENDING", "RUNNING"
ENDED = ("COMPLETED", "FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "CANCELLED")

# state -> (ExitCode as sacct prints it, Reason)
EXIT: dict[str, tuple[str, str]] = {
    "COMPLETED": ("0:0", "None"),
    "FAILED": ("1:0", "NonZeroExitCode"),
    "TIMEOUT": ("0:15", "TimeLimit"),
    "OUT_OF_MEMORY": ("0:125", "OutOfMemory"),
    "NODE_FAIL": ("1:0", "NodeDown"),
    "PREEMPTED": ("0:15", "None"),
    "CANCELLED": ("0:15", "None"),
}

KINDS = ("training", "inference", "short", "cpu")
NAMES = {
    "training": ["transitnet-train", "transitnet-sweep", "lc-pretrain"],
    "inference": ["astrocode-serve"],
    "short": ["bls-eval", "lc-preprocess", "notebook"],
    "cpu": ["catalog-xmatch", "fits-convert"],
}
USERS = ["akumar", "bchen", "cdiaz", "dnovak", "eokafor", "fsato", "gmuller", "hpark"]


@dataclass
class Job:
    id: int
    name: str
    kind: str
    user: str
    partition: int
    n_nodes: int
    gpus_per_node: int
    time_limit: float
    duration: float
    priority: int
    submit: float
    fate: str = "COMPLETED"  # planned outcome when nothing else happens
    fate_cause: str | None = None
    state: str = PENDING
    start: float | None = None
    end: float | None = None
    nodes: list[int] = field(default_factory=list)
    gpus: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    exit_code: str = "0:0"
    reason: str = "None"
    # workload dynamics and fault effects
    step: int = 0
    loss: float = 2.5
    step_time: float = 0.5
    data_frac: float = 0.05
    effects: dict[str, Any] = field(default_factory=dict)
    requeue: bool = False

    @property
    def uses_gpus(self) -> bool:
        return self.gpus_per_node > 0

    @property
    def ranks(self) -> int:
        return max(1, self.n_nodes * max(1, self.gpus_per_node))


class Scheduler:
    """Priority, then submit order; first fit over nodes of the job's partition (whole-node or per-GPU)."""

    def __init__(self, n_nodes: int, gpus_per_node: np.ndarray, node_partition: np.ndarray) -> None:
        self.free_gpus = gpus_per_node.astype(np.int64).copy()
        self.gpus_per_node = gpus_per_node
        self.node_partition = node_partition
        self.cpu_slots = np.full(n_nodes, 4, dtype=np.int64)  # CPU-only jobs share a node, 4 at a time
        self.usable = np.ones(n_nodes, dtype=bool)  # false when drained or down
        self.busy_jobs = np.zeros(n_nodes, dtype=np.int64)

    def place(self, job: Job) -> list[int] | None:
        cand = np.flatnonzero((self.node_partition == job.partition) & self.usable)
        if job.uses_gpus:
            need = job.gpus_per_node
            fits = cand[self.free_gpus[cand] >= need]
        else:
            fits = cand[self.cpu_slots[cand] > 0]
        if len(fits) < job.n_nodes:
            return None
        return [int(n) for n in fits[: job.n_nodes]]

    def allocate(self, job: Job, nodes: list[int], first_gpu: np.ndarray, gpu_busy: np.ndarray) -> np.ndarray:
        picked = []
        for n in nodes:
            self.busy_jobs[n] += 1
            if job.uses_gpus:
                base = int(first_gpu[n])
                idx = [base + i for i in range(int(self.gpus_per_node[n])) if not gpu_busy[base + i]][
                    : job.gpus_per_node
                ]
                gpu_busy[idx] = True
                picked += idx
                self.free_gpus[n] -= job.gpus_per_node
            else:
                self.cpu_slots[n] -= 1
        return np.array(picked, dtype=np.int64)

    def release(self, job: Job, gpu_busy: np.ndarray) -> None:
        for n in job.nodes:
            self.busy_jobs[n] -= 1
            if job.uses_gpus:
                self.free_gpus[n] += job.gpus_per_node
            else:
                self.cpu_slots[n] += 1
        if len(job.gpus):
            gpu_busy[job.gpus] = False
