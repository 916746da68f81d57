"""The fault catalogue: one injector per root cause, each playing the whole cascade an operator would see.

Delays are real-life values (NCCL's 600 s watchdog, Slurm's node-not-responding timeout, a health check
draining the node) multiplied by the scenario's `cascade_scale`. Every injection is recorded as ground truth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hpcmind.taxonomy import root_cause_ids

from . import logfmt
from .jobs import RUNNING, Job

if TYPE_CHECKING:
    from .engine import GroundTruth, Simulation
    from .scenario import ScheduledFault

# Random schedule mix, after the published studies (GPU 64%, software 13%, network 10%, maintenance 8%, other 5%).
RANDOM_MIX: dict[str, float] = {
    "gpu_hardware_fault": 0.28,
    "gpu_memory_error": 0.20,
    "nvlink_error": 0.08,
    "gpu_thermal": 0.08,
    "collective_hang": 0.07,
    "storage_io": 0.06,
    "network_fabric": 0.10,
    "node_failure": 0.05,
    "preemption": 0.03,
    "inference_overload": 0.03,
    "dataloader_bottleneck": 0.02,
}
NEEDS_JOB = {
    "gpu_oom",
    "host_oom",
    "collective_hang",
    "rendezvous_failure",
    "dataloader_bottleneck",
    "numerical_divergence",
    "software_error",
    "environment_error",
    "walltime_exceeded",
    "preemption",
    "inference_overload",
    "network_fabric",
    "nvlink_error",
    "storage_io",
}
NCCL_TIMEOUT = 600.0
# A fault that picks its own victim leaves a node alone this long after its last fault: two independent faults
# on one node within minutes would be one tangled incident, not two (a scenario may still name the node).
QUIET_SECONDS = 900.0
# Faults that need ranks talking to each other, or several GPUs on one node.
MULTI_RANK = {"collective_hang", "network_fabric", "nvlink_error"}


@dataclass
class Ctx:
    t: float
    node: int
    gpu: int | None  # flat GPU index
    job: Job | None
    truth: GroundTruth
    variant: str


class FaultPlanner:
    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.rng = np.random.default_rng(sim.seed + 7)
        self.scheduled = sorted(sim.sc.faults.scheduled, key=lambda f: f.at)
        self._sched_i = 0
        self._retry: list[ScheduledFault] = []  # scheduled faults still waiting for a target (e.g. a free node)
        self._n = 0
        self._last_fault: dict[int, float] = {}  # node -> time of its latest fault
        self.injectors: dict[str, Callable[[Ctx], None]] = {c: getattr(self, f"_{c}") for c in root_cause_ids()}

    # ------------------------------------------------------------ scheduling
    def maybe_inject(self, t: float) -> None:
        sim, rf = self.sim, self.sim.sc.faults.random
        while self._sched_i < len(self.scheduled) and sim.t0 + self.scheduled[self._sched_i].at <= t:
            self._retry.append(self.scheduled[self._sched_i])
            self._sched_i += 1
        waiting, self._retry = self._retry, []
        for f in waiting:
            node = sim.topo.node_id(f.node) if f.node else None
            if not self.inject(f.root_cause, t, node=node, gpu=f.gpu, variant=f.variant):
                self._retry.append(f)
        if not rf.enabled:
            return
        per_node_s = rf.hardware_per_1000_node_days / 1000 / 86400 * rf.time_compression
        for _ in range(int(self.rng.poisson(per_node_s * sim.topo.n_nodes * sim.tick))):
            causes, p = zip(*RANDOM_MIX.items(), strict=True)
            self.inject(str(self.rng.choice(causes, p=np.array(p) / sum(p))), t)
        if self.rng.random() < rf.confounders_per_hour * rf.time_compression * sim.tick / 3600:
            self.confounder(t)

    def unquiet(self, t: float, ongoing: bool = True) -> set[int]:
        """Nodes a self-picked fault leaves alone: a fault here lately, or (`ongoing`) a job here still living
        through one (running on with NaN loss)."""
        nodes = {n for n, last in self._last_fault.items() if t - last < QUIET_SECONDS}
        if ongoing:
            nodes |= {
                n for j in self.sim.jobs.values() if j.state == RUNNING and j.effects.get("fault") for n in j.nodes
            }
        return nodes

    def _pick_job(self, cause: str, node: int | None) -> Job | None:
        sim = self.sim
        kind = {"inference_overload": ("inference",)}.get(
            cause,
            ("training",)
            if cause
            in (
                "collective_hang",
                "dataloader_bottleneck",
                "numerical_divergence",
                "network_fabric",
                "nvlink_error",
                "gpu_oom",
                "storage_io",  # checkpoints and data reads: a training job is what a filesystem fault shows in
            )
            else ("training", "short", "inference"),
        )
        # a job-level fault is the job's own output: a neighbour job living through its fault does not blur it
        busy = self.unquiet(sim.t, ongoing=cause not in JOB_LEVEL) if node is None else set()
        jobs = [
            j
            for j in sim.jobs.values()
            if j.state == RUNNING
            and j.kind in kind
            and j.uses_gpus
            and not j.effects.get("fault")
            and (node is None or node in j.nodes)
            and busy.isdisjoint(j.nodes)
        ]
        if cause in MULTI_RANK:
            jobs = [j for j in jobs if j.ranks > 1]  # a single rank has no collective to hang in
        if cause in ("collective_hang", "network_fabric") and not node:
            jobs = [j for j in jobs if j.n_nodes > 1] or jobs
        if cause == "nvlink_error":
            jobs = [j for j in jobs if j.gpus_per_node > 1]
        if not jobs:
            return None
        return jobs[int(self.rng.integers(len(jobs)))]

    def _start_job_for(self, cause: str, t: float) -> Job | None:
        """A fresh job on free GPUs: faults at a job's start (rendezvous, environment), or a server to overload."""
        sim = self.sim
        need = 2 if cause in MULTI_RANK else 1
        busy = self.unquiet(t, ongoing=cause not in JOB_LEVEL)
        free = [n for n in np.flatnonzero(sim.sched.usable & (sim.sched.free_gpus >= need)).tolist() if n not in busy]
        if not free:
            return None
        node = free[int(self.rng.integers(len(free)))]
        kind = "inference" if cause == "inference_overload" else "training"
        job = sim.new_job(
            kind,
            t,
            fate="COMPLETED",
            n_nodes=1,
            partition=int(sim.topo.node_partition[node]),
            gpus_per_node=int(min(sim.sched.free_gpus[node], 8)),
        )
        job.duration = 10 * 86400  # the fault ends it, nothing else
        job.time_limit = max(job.time_limit, 86400)
        if not sim._try_start(job, t):
            del sim.jobs[job.id]
            return None
        return job

    def inject(
        self,
        cause: str,
        t: float,
        node: int | None = None,
        gpu: int | None = None,
        variant: str | None = None,
        job: Job | None = None,
        kind: str = "injected",
    ) -> bool:
        from .engine import GroundTruth

        sim = self.sim
        if job is None and cause in NEEDS_JOB:
            if cause in ("rendezvous_failure", "environment_error"):
                job = self._start_job_for(cause, t)
            else:
                job = self._pick_job(cause, node)
                if job is None and node is None:
                    # nothing suitable is running: start a job now, the fault hits it on a later tick
                    self._start_job_for(cause, t)
                    return False
            if job is None:
                return False
        if job is not None:
            if node is None or node not in job.nodes:
                # job-level faults show on the batch host; hardware ones on any node of the job
                node = job.nodes[0] if cause in JOB_LEVEL else job.nodes[int(self.rng.integers(len(job.nodes)))]
            if gpu is None and len(job.gpus):
                on_node = [g for g in job.gpus.tolist() if sim.topo.gpu_node[g] == node]
                gpu = on_node[int(self.rng.integers(len(on_node)))] if on_node else None
            elif gpu is not None:
                gpu = int(sim.topo.gpu_first[node]) + gpu
        else:
            if node is None:
                quiet = np.ones(sim.topo.n_nodes, dtype=bool)
                quiet[list(self.unquiet(t))] = False
                candidates = np.flatnonzero(~sim.node_down & (sim.topo.gpus_per_node > 0) & quiet)
                if not len(candidates):
                    return False
                # Faults surface mostly under load (a stressed GPU or link fails; an idle one goes unnoticed).
                busy = np.flatnonzero(~sim.node_down & (sim.sched.busy_jobs > 0) & (sim.topo.gpus_per_node > 0) & quiet)
                if len(busy) and self.rng.random() < 0.85:
                    candidates = busy
                node = int(candidates[int(self.rng.integers(len(candidates)))])
            gpus = sim.topo.gpus_of(node)
            held = gpus[sim.gpu_job[gpus] >= 0] if len(gpus) else gpus
            if gpu is not None:
                gpu = int(sim.topo.gpu_first[node]) + gpu
            elif len(held) and self.rng.random() < 0.85:
                gpu = int(held[int(self.rng.integers(len(held)))])
            elif len(gpus):
                gpu = int(gpus[int(self.rng.integers(len(gpus)))])
            jid = int(sim.gpu_job[gpu]) if gpu is not None and sim.gpu_job[gpu] >= 0 else None
            job = sim.jobs.get(jid) if jid is not None else None
        self._n += 1
        v = variant or self._variant(cause)
        gpu_label = str(int(sim.topo.gpu_index[gpu])) if gpu is not None and cause in GPU_SCOPED else None
        node_label = sim.topo.node_names[node]
        truth = GroundTruth(
            id=f"f{self._n:04d}",
            root_cause=cause,
            kind=kind,
            onset=t,
            node=node_label,
            gpu=gpu_label,
            job=str(job.id) if job else None,
            variant=v,
            affected_jobs=[str(job.id)] if job else [],
            gpu_bus_id=sim.topo.gpu_bus_id[gpu] if gpu_label is not None and gpu is not None else None,
        )
        if (cause == "storage_io" and v == "lustre-stall") or cause == "collective_hang":
            # a shared filesystem, or a rank that hangs silently: no node is to blame in what anyone can see
            truth.node, truth.gpu = None, None
        sim.truth.append(truth)
        for n in job.nodes if job is not None else [node]:
            self._last_fault[n] = t
        if job is not None:
            job.effects["fault"] = cause
        self.injectors[cause](Ctx(t, node, gpu, job, truth, v))
        return True

    def job_fate(self, job: Job, cause: str, t: float) -> None:
        """A job's own planned ending (user failure, time limit) played through the same injectors."""
        if job.effects.get("fault"):
            return
        self.inject(cause, t, job=job, kind="user")

    def _variant(self, cause: str) -> str:
        opts = VARIANTS.get(cause, ["default"])
        return opts[int(self.rng.integers(len(opts)))]

    # ------------------------------------------------------------ helpers
    def rank_of(self, job: Job, gpu: int | None) -> int:
        if gpu is None or not len(job.gpus):
            return 0
        idx = np.flatnonzero(job.gpus == gpu)
        return int(idx[0]) if len(idx) else 0

    def rank_src(self, job: Job, rank: int) -> str:
        return f"job/{job.id}/rank{rank}"

    def host(self, node: int) -> str:
        return self.sim.topo.node_names[node]

    def crash(
        self,
        c: Ctx,
        delay: float,
        *,
        state: str = "FAILED",
        watchdog: bool = True,
        drain: str | None = None,
        exit_code: str | None = None,
    ) -> None:
        """The cascade after a rank dies: peers hit the NCCL watchdog, torchrun reports, the job ends."""
        sim, job = self.sim, c.job
        if job is None:
            if drain:
                sim.after(60, lambda: sim.drain(c.node, sim.t, drain), c.t)
            return
        rng = self.rng
        if watchdog and job.ranks > 1:
            bad = self.rank_of(job, c.gpu)
            peers = [r for r in range(job.ranks) if r != bad][:3]
            seq = int(rng.integers(100, 90000))

            def peers_time_out() -> None:
                for r in peers:
                    sim.log(sim.t, self.rank_src(job, r), logfmt.nccl_watchdog(rng, r, seq, 600000, sim.t))
                    for ln in logfmt.nccl_abort_tail(r):
                        sim.log(sim.t, self.rank_src(job, r), ln)

            sim.after(NCCL_TIMEOUT, peers_time_out, c.t)
            delay = max(delay, NCCL_TIMEOUT + 5)

        def finish() -> None:
            if job.state == RUNNING:
                rank = self.rank_of(job, c.gpu)
                sim.log(sim.t, f"job/{job.id}", "torch.distributed.elastic.multiprocessing.errors.ChildFailedError:")
                sim.log(sim.t, f"job/{job.id}", f"  host      : {self.host(c.node)}")
                sim.log(
                    sim.t, f"job/{job.id}", f"  rank      : {rank} (local_rank: {rank % max(1, job.gpus_per_node)})"
                )
                sim.log(sim.t, f"job/{job.id}", f"srun: error: {self.host(c.node)}: task 0: Exited with exit code 1")
                sim.end_job(job, sim.t, state, exit_code=exit_code)

        sim.after(delay, finish, c.t)
        if drain:
            sim.after(60, lambda: sim.drain(c.node, sim.t, drain), c.t)

    def pid(self) -> int:
        return int(self.rng.integers(2000, 4_000_000))

    # ------------------------------------------------------------ injectors (one per root cause)
    def _gpu_oom(self, c: Ctx) -> None:
        sim, job = self.sim, c.job
        assert job is not None
        g = c.gpu if c.gpu is not None else int(job.gpus[0])
        sim.fb_full[g] = True
        rank = self.rank_of(job, g)
        total = sim.topo.gpu_fb_total[g] / 1024 * 0.9705
        for ln in logfmt.traceback_head(self.rng, "train.py") + logfmt.cuda_oom(
            self.rng, int(sim.topo.gpu_index[g]), total
        ):
            sim.log(c.t, self.rank_src(job, rank), ln)
        self.crash(c, 20, watchdog=False)

    def _host_oom(self, c: Ctx) -> None:
        sim, job = self.sim, c.job
        assert job is not None
        node, host = c.node, self.host(c.node)

        def squeeze(level: float) -> Callable[[], None]:
            return lambda: sim.mem_squeeze.__setitem__(node, level)

        for i, lvl in enumerate((0.5, 0.8, 0.97, 1.0)):
            sim.after(i * 20, squeeze(lvl), c.t)

        def kill() -> None:
            pid = self.pid()
            sim.oom_kill[node] += 1
            if c.variant == "dataloader":
                sim.klog(
                    sim.t,
                    node,
                    f"Out of memory: Killed process {pid} (pt_data_worker) total-vm:{int(9e7)}kB, "
                    f"anon-rss:{int(6e7)}kB, file-rss:0kB, shmem-rss:{int(2e6)}kB, UID:1000 "
                    "pgtables:120000kB oom_score_adj:0",
                )
                sim.log(
                    sim.t,
                    self.rank_src(job, 0),
                    f"RuntimeError: DataLoader worker (pid {pid}) is killed by signal: Killed.",
                )
                sim.after(5, lambda: sim.end_job(job, sim.t, "FAILED"), sim.t)
            else:
                sim.klog(sim.t, node, "python invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0")
                memcg = f"/system.slice/slurmstepd.scope/job_{job.id}"
                sim.klog(
                    sim.t,
                    node,
                    f"oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0-1,oom_memcg={memcg},"
                    f"task_memcg={memcg}/step_0/user/task_0,task=python,pid={pid},uid=1000",
                )
                sim.klog(
                    sim.t,
                    node,
                    f"Memory cgroup out of memory: Killed process {pid} (python) "
                    f"total-vm:{int(1.4e8)}kB, anon-rss:{int(1.1e8)}kB, file-rss:1468kB, "
                    "shmem-rss:4kB, UID:1000 pgtables:240000kB oom_score_adj:0",
                )
                line = (
                    f"slurmstepd: error: Detected 1 oom-kill event(s) in StepId={job.id}.batch. Some of your "
                    "processes may have been killed by the cgroup out-of-memory handler."
                    if self.rng.integers(2)
                    else f"[{sim.iso(sim.t)[:-1]}] error: Detected 1 oom_kill event in StepId={job.id}.0. Some of the "
                    "step tasks have been OOM Killed."
                )
                sim.log(sim.t, f"job/{job.id}", line)
                sim.log(sim.t, f"job/{job.id}", f"srun: error: {host}: task 0: Out Of Memory")
                sim.after(2, lambda: sim.end_job(job, sim.t, "OUT_OF_MEMORY"), sim.t)
            sim.after(30, squeeze(0.0), sim.t)

        sim.after(75, kill, c.t)

    def _gpu_hardware_fault(self, c: Ctx) -> None:
        sim, g = self.sim, c.gpu
        assert g is not None
        node, pci = c.node, sim.topo.gpu_pci[g]
        # "silent" (scheduled only): the GPU drops out of DCGM with no driver line at all, as on nodes whose kernel
        # log is not collected; what shows it is the absence (GPUMissing) and the job's own CUDA error
        code = {"xid79": 79, "xid119": 119, "xid62": 62, "silent": 79}[c.variant]
        if c.variant != "silent":
            sim.klog(c.t, node, logfmt.xid_line(self.rng, pci, code, self.pid(), "python", int(sim.topo.gpu_index[g])))
        if c.variant == "silent":
            sim.gpu_lost[g] = True
        elif code == 79:
            sim.gpu_lost[g] = True
            sim.klog(c.t + 0.01, node, f"NVRM: GPU {pci.replace('PCI:', '')}.0: GPU has fallen off the bus.")
            sim.klog(
                c.t + 0.02,
                node,
                f"NVRM: Xid ({pci}): 154, GPU recovery action changed from 0x0 (None) to 0x2 (Node Reboot Required)",
            )
        else:
            sim.xid[g], sim.xid_code[g] = code, code
            sim.ov_util[g], sim.ov_sm[g] = 0.0, 0.0
        job = c.job
        if job is not None:
            rank = self.rank_of(job, g)
            msg = (
                "RuntimeError: CUDA error: unspecified launch failure"
                if code != 79
                else "torch.AcceleratorError: CUDA error: unspecified launch failure"
            )
            sim.log(c.t + 1, self.rank_src(job, rank), msg)
            sim.log(
                c.t + 1,
                self.rank_src(job, rank),
                "CUDA kernel errors might be asynchronously reported at some "
                "other API call, so the stacktrace below might be incorrect.",
            )
        drain = None if c.variant == "silent" else f"Xid {code} on GPU {int(sim.topo.gpu_index[g])}"
        self.crash(c, 30, drain=drain)

    def _gpu_memory_error(self, c: Ctx) -> None:
        sim, g = self.sim, c.gpu
        assert g is not None
        pci, node = sim.topo.gpu_pci[g], c.node
        if c.variant == "xid48":
            codes = [48, 63]
        elif c.variant == "contained":
            codes = [94, 63]
        else:
            codes = [95, 64]
        for i, code in enumerate(codes):
            sim.klog(
                c.t + i * 0.05,
                node,
                logfmt.xid_line(self.rng, pci, code, self.pid(), "python", int(sim.topo.gpu_index[g])),
            )
        sim.counters["dbe"][g] += 1
        sim.counters["unc_rows"][g] += 1
        sim.xid[g], sim.xid_code[g] = codes[0], codes[0]
        if codes[-1] == 64:
            sim.remap_fail[g] = 1
        job = c.job
        if job is not None:
            sim.log(
                c.t + 1,
                self.rank_src(job, self.rank_of(job, g)),
                "RuntimeError: CUDA error: uncorrectable ECC error encountered",
            )
        self.crash(c, 20, drain=f"Xid {codes[0]} uncorrectable ECC")

    def _nvlink_error(self, c: Ctx) -> None:
        sim, g = self.sim, c.gpu
        assert g is not None
        ramp = [g]

        def errors(k: int) -> Callable[[], None]:
            def f() -> None:
                sim.counters["nvl_crc"][ramp] += 40 * k
                sim.counters["nvl_replay"][ramp] += 8 * k

            return f

        for k in range(1, 5):
            sim.after(k * 15, errors(k), c.t - 90)
        sim.klog(
            c.t,
            c.node,
            logfmt.xid_line(self.rng, sim.topo.gpu_pci[g], 74, self.pid(), "python", int(sim.topo.gpu_index[g])),
        )
        sim.xid[g], sim.xid_code[g] = 74, 74
        self.crash(c, 30, drain="Xid 74 NVLink error")

    def _gpu_thermal(self, c: Ctx) -> None:
        sim, g = self.sim, c.gpu
        assert g is not None

        def heat_up(level: float, bits: int, clk: float) -> Callable[[], None]:
            def f() -> None:
                sim.heat[g] = level
                sim.thr_bits[g] = bits
                sim.clk_factor[g] = clk
                if c.job is not None:
                    c.job.effects["slowdown"] = 1 / max(clk, 0.3)

            return f

        sim.after(0, heat_up(25, 0x20, 0.85), c.t)
        sim.after(120, heat_up(40, 0x20 | 0x40 | 0x08, 0.55), c.t)
        dur = float(self.rng.uniform(1200, 3000))
        sim.after(dur, heat_up(0, 0, 1.0), c.t)

    def _network_fabric(self, c: Ctx) -> None:
        sim, node = self.sim, c.node
        hcas = np.flatnonzero(sim.topo.hca_node == node)
        if not len(hcas):
            return
        h = int(hcas[int(self.rng.integers(len(hcas)))])
        dev, pci = sim.topo.hca_device[h], sim.topo.hca_pci[h]
        sim.ib_err_rate[h] = 5.0
        sim.ib["ler"][h] += 3

        def down() -> None:
            sim.ib_state[h], sim.ib_phys[h] = 1.0, float(self.rng.choice([2, 3]))
            sim.ib["link_downed"][h] += 1
            line = self.rng.choice(
                [
                    f"mlx5_core {pci}: Port module event: module {h}, Cable unplugged",
                    f"mlx5_core {pci} ib{h}: Link down",
                    f"mlx5_core {pci}: mlx5_port_module_event:1131:(pid 0): Port module event[error]: "
                    f"module {h}, Cable error, High Temperature",
                ]
            )
            sim.klog(sim.t, node, str(line))

        sim.after(60, down, c.t - 60)
        job = c.job
        if job is not None:
            rank = self.rank_of(job, c.gpu)
            host = self.host(node)
            peer = f"10.{(node + 1) % 250}.{int(self.rng.integers(250))}.{int(self.rng.integers(1, 250))}"
            err = int(self.rng.choice([12, 12, 13]))
            sim.log(
                c.t + 5,
                self.rank_src(job, rank),
                f"{host}:{self.pid()}:{self.pid()} [{rank % 8}] "
                f"transport/net_ib.cc:{int(self.rng.choice([881, 1296]))} "
                f"NCCL WARN NET/IB : Got completion from peer {peer}<{int(self.rng.integers(30000, 60000))}> with "
                f"error {err}, opcode {int(self.rng.integers(0, 3))}, len 0, vendor err 129 ({dev})",
            )
        self.crash(c, 30, drain=f"IB port {dev} down")

    def _collective_hang(self, c: Ctx) -> None:
        sim, job = self.sim, c.job
        assert job is not None
        job.effects["hang"] = True
        if c.variant == "spin":  # NCCL kernels spin: GPU_UTIL stays high while SM activity collapses
            sim.ov_util[job.gpus], sim.ov_sm[job.gpus] = 100.0, 0.01
        else:
            sim.ov_util[job.gpus], sim.ov_sm[job.gpus] = 0.0, 0.0
        self.crash(c, NCCL_TIMEOUT + 10)

    def _rendezvous_failure(self, c: Ctx) -> None:
        sim, job = self.sim, c.job
        assert job is not None
        sim.ov_util[job.gpus] = 0.0
        src = self.rank_src(job, 0)
        port = int(self.rng.choice([29500, 29400, 12355]))
        if c.variant == "port-in-use":
            lines = [
                f"[W socket.cpp:426] [c10d] The server socket has failed to bind to [::]:{port} (errno: 98 - "
                "Address already in use).",
                f"[W socket.cpp:426] [c10d] The server socket has failed to bind to 0.0.0.0:{port} (errno: 98 - "
                "Address already in use).",
                "[E socket.cpp:462] [c10d] The server socket has failed to listen on any local network address.",
                f"torch.distributed.DistNetworkError: The server socket has failed to listen on any local network "
                f"address. The server socket has failed to bind to [::]:{port} (errno: 98 - Address already in "
                f"use). The server socket has failed to bind to 0.0.0.0:{port} (errno: 98 - Address already in "
                "use).",
            ]
            delay = 8.0
        else:
            n = job.ranks
            lines = [
                f"[W socket.cpp:663] [c10d] The client socket has failed to connect to [{self.host(job.nodes[0])}]"
                f":{port} (errno: 110 - Connection timed out).",
                f"torch.distributed.DistStoreError: Timed out after 1801 seconds waiting for clients. "
                f"{n - 1}/{n} clients joined.",
            ]
            delay = 1801.0
        for i, ln in enumerate(lines):
            sim.log(c.t + delay * (i + 1) / len(lines), src, ln)
        self.crash(c, delay + 2, watchdog=False)

    def _storage_io(self, c: Ctx) -> None:
        sim, node = self.sim, c.node
        job = c.job
        if c.variant == "disk-full":
            fs = next((i for i, s in enumerate(sim.topo.fs_specs) if not s[4]), 0)
            mount = sim.topo.fs_specs[fs][0] if sim.topo.fs_specs else "/tmp"
            if sim.topo.fs_specs:
                sim.fs_fill_rate[fs, node] = sim.fs_avail[fs, node] / 60
            if job is not None:
                path = f"{mount}/{job.user}/ckpt/step_{job.step:06d}.pt"
                lines = (
                    [f"OSError: [Errno 28] No space left on device: '{path}'"]
                    if self.rng.integers(2)
                    else [
                        "RuntimeError: [enforce fail at inline_container.cc:588] . PytorchStreamWriter failed "
                        "writing file data/12: file write failed"
                    ]
                )
                for ln in logfmt.traceback_head(self.rng, "train.py") + lines:
                    sim.log(c.t + 70, self.rank_src(job, 0), ln)
                self.crash(c, 75, watchdog=False)
            return
        # shared filesystem stall: every client blocks, checkpoints crawl, then it recovers
        stalled = np.flatnonzero(~sim.node_down)
        sim.io_stall[stalled] = 0.7
        for j in sim.jobs.values():
            if j.state == RUNNING and j.kind == "training":
                j.effects.setdefault("slowdown", 4.0)
                c.truth.affected_jobs.append(str(j.id))
        target = f"10.7.42.{int(self.rng.integers(2, 9))}@o2ib"
        # every client with I/O in flight logs the stall: the nodes of the jobs it slows, and a few idle ones
        busy = {n for j in sim.jobs.values() if j.effects.get("slowdown") == 4.0 for n in j.nodes}
        for n in sorted(busy | set(stalled[:4].tolist())):
            sim.klog(
                c.t + 5,
                n,
                f"LustreError: 11-0: scratch-OST000{int(self.rng.integers(8))}-osc-ffff9a2c: operation "
                f"ost_write to node {target} failed: rc = -107",
            )
            sim.klog(c.t + 121, n, f"INFO: task python:{self.pid()} blocked for more than 120 seconds.")
            sim.klog(c.t + 121, n, '"echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.')
        dur = float(self.rng.uniform(900, 2400))
        for n in range(sim.topo.n_nodes):  # the whole cluster lives through the stall: no other fault meanwhile
            self._last_fault[n] = c.t + dur

        def recover() -> None:
            sim.io_stall[:] = 0
            for j in sim.jobs.values():
                if j.effects.get("slowdown") == 4.0:
                    j.effects.pop("slowdown")

        sim.after(dur, recover, c.t)

    def _dataloader_bottleneck(self, c: Ctx) -> None:
        sim, job = self.sim, c.job
        assert job is not None
        starve = float(self.rng.uniform(0.6, 0.8))
        job.effects["data_starved"] = starve
        util = np.clip(98 * (1 - starve) + self.rng.normal(0, 8, len(job.gpus)), 5, 60)
        sim.ov_util[job.gpus] = util
        sim.ov_sm[job.gpus] = util / 100 * 0.5
        for n in job.nodes:
            sim.load_extra[n] = sim.topo.node_cpus[n] * 0.9

    def _numerical_divergence(self, c: Ctx) -> None:
        sim, job = self.sim, c.job
        assert job is not None
        src = self.rank_src(job, 0)
        scale = 65536.0
        for i in range(6):
            line = (
                f"Gradient overflow.  Skipping step, loss scaler 0 reducing loss scale to {scale / 2}"
                if c.variant == "apex"
                else f"[INFO] [stage_1_and_2.py:1651:step] [deepspeed] OVERFLOW! Rank 0 Skipping step. Attempted loss "
                f"scale: {int(scale)}, reducing to {int(scale / 2)}"
            )
            sim.log(c.t + i * 15, src, line)
            scale /= 2
        job.effects["nan"] = True
        sim.log(
            c.t + 100,
            src,
            f"iteration {job.step + 40:>8}/  100000 | lm loss: nan | loss scale: 1.0 | number of "
            "skipped iterations:  40 | number of nan iterations:   8 |",
        )
        if c.variant == "abort":
            sim.log(c.t + 120, src, "FloatingPointError: Loss is nan, stopping training")
            self.crash(c, 125, watchdog=False)

    def _software_error(self, c: Ctx) -> None:
        sim, job = self.sim, c.job
        assert job is not None
        errs = {
            "keyerror": ["KeyError: 'transit_depth'"],
            "shape": ["RuntimeError: mat1 and mat2 shapes cannot be multiplied (256x1024 and 512x128)"],
            "attr": ["AttributeError: 'NoneType' object has no attribute 'to'"],
            "assert": [
                "RuntimeError: CUDA error: device-side assert triggered",
                "/pytorch/aten/src/ATen/native/cuda/Loss.cu:240: nll_loss_forward_reduce_cuda_kernel_2d: "
                "block: [0,0,0], thread: [5,0,0] Assertion `t >= 0 && t < n_classes` failed.",
            ],
            "index": ["IndexError: index 4096 is out of bounds for dimension 0 with size 4096"],
            # scheduled only (not in the random mix): the driver's Xid 13 on the job's GPU, the app's bad access
            "xid13": ["RuntimeError: CUDA error: an illegal memory access was encountered"],
        }[c.variant]
        rank = 0
        if c.variant == "xid13":
            mine = [g for g in job.gpus.tolist() if sim.topo.gpu_node[g] == c.node]
            g = c.gpu if c.gpu in mine else (mine[0] if mine else c.gpu)
            if g is not None:
                pci = sim.topo.gpu_pci[g]
                sim.klog(
                    c.t, c.node, logfmt.xid_line(self.rng, pci, 13, self.pid(), "python", int(sim.topo.gpu_index[g]))
                )
                sim.xid[g], sim.xid_code[g] = 13, 13
                rank = self.rank_of(job, g)
        for ln in logfmt.traceback_head(self.rng, "train.py") + errs:
            sim.log(c.t, self.rank_src(job, rank), ln)
        self.crash(c, 3, watchdog=False)

    def _environment_error(self, c: Ctx) -> None:
        sim, job = self.sim, c.job
        assert job is not None
        sim.ov_util[job.gpus] = 0.0
        lines = {
            "libcudart": ["ImportError: libcudart.so.12: cannot open shared object file: No such file or directory"],
            "driver": [
                "RuntimeError: The NVIDIA driver on your system is too old (found version 11040). Please update "
                "your GPU driver by downloading and installing a new version from the URL: "
                "http://www.nvidia.com/Download/index.aspx"
            ],
            "module": ["ModuleNotFoundError: No module named 'astropy'"],
            "arch": ["RuntimeError: CUDA error: no kernel image is available for execution on the device"],
        }[c.variant]
        for ln in logfmt.traceback_head(self.rng, "train.py")[:2] + lines:
            sim.log(c.t + 4, self.rank_src(job, 0), ln)
        self.crash(c, 6, watchdog=False)

    def _walltime_exceeded(self, c: Ctx) -> None:
        sim, job = self.sim, c.job
        assert job is not None
        host = self.host(job.nodes[0])
        if job.start is not None and c.truth.kind == "injected":
            job.time_limit = c.t - job.start  # a scheduled time-limit fault: the limit is what has elapsed
        sim.log(c.t, f"job/{job.id}", logfmt.stepd_cancel(job.id, host, c.t, "TIME LIMIT"))
        if job.n_nodes > 1:
            sim.log(c.t, f"job/{job.id}", "srun: Job step aborted: Waiting up to 32 seconds for job step to finish.")
        sim.ctld(c.t, f"Time limit exhausted for JobId={job.id}")
        sim.end_job(job, c.t + 2, "TIMEOUT")

    def _node_failure(self, c: Ctx) -> None:
        sim, node, host = self.sim, c.node, self.host(c.node)
        if c.variant == "panic":
            sim.klog(c.t - 1, node, "Kernel panic - not syncing: Fatal exception in interrupt")
        sim.set_down(node, c.t)
        jobs = [j for j in sim.jobs.values() if j.state == RUNNING and node in j.nodes]
        c.truth.affected_jobs += [str(j.id) for j in jobs]

        def not_responding() -> None:
            sim.ctld(sim.t, f"error: Nodes {host} not responding")

        def set_down() -> None:
            sim.ctld(sim.t, f"error: Nodes {host} not responding, setting DOWN")
            for j in jobs:
                if j.state != RUNNING:
                    continue
                sim.ctld(sim.t, f"Killing JobId={j.id} on failed node {host}")
                for other in j.nodes:
                    if other != node:
                        sim.log(
                            sim.t,
                            f"job/{j.id}",
                            logfmt.stepd_cancel(
                                j.id, self.host(other), sim.t, "NODE FAILURE, SEE SLURMCTLD LOG FOR DETAILS"
                            ),
                        )
                sim.end_job(j, sim.t, "NODE_FAIL")
            sim.node_drain[node] = True

        sim.after(100, not_responding, c.t)
        sim.after(300, set_down, c.t)

    def _preemption(self, c: Ctx) -> None:
        sim, job = self.sim, c.job
        assert job is not None
        host = self.host(job.nodes[0])
        job.requeue = bool(self.rng.integers(2))
        sim.ctld(
            c.t,
            f"preempted JobId={job.id} has been requeued to reclaim resources for a higher priority job"
            if job.requeue
            else f"preempted JobId={job.id} to reclaim resources for a higher priority job",
        )
        sim.log(c.t + 1, f"job/{job.id}", logfmt.stepd_cancel(job.id, host, c.t + 1, "PREEMPTION"))
        sim.end_job(job, c.t + 2, "PREEMPTED")

    def _inference_overload(self, c: Ctx) -> None:
        sim, job = self.sim, c.job
        assert job is not None
        job.effects["overload"] = float(self.rng.uniform(3.0, 6.0))
        dur = float(self.rng.uniform(900, 2400))
        sim.after(dur, lambda: job.effects.pop("overload", None), c.t)

    # ------------------------------------------------------------ confounders (benign noise)
    def confounder(self, t: float) -> None:
        sim = self.sim
        kind = int(self.rng.integers(4))
        up = np.flatnonzero(~sim.node_down)
        if not len(up):
            return
        node = int(up[int(self.rng.integers(len(up)))])
        if kind == 0 and sim.topo.n_gpus:
            g = int(self.rng.choice(sim.topo.gpus_of(node))) if sim.topo.gpus_per_node[node] else None
            if g is not None:
                sim.counters["sbe"][g] += int(self.rng.integers(1, 4))
        elif kind == 1:
            hcas = np.flatnonzero(sim.topo.hca_node == node)
            if len(hcas):
                h = int(hcas[0])
                sim.ib["ler"][h] += 1
                sim.ib["sym"][h] += int(self.rng.integers(1, 6))
                sim.klog(t, node, f"mlx5_core {sim.topo.hca_pci[h]} ib0: Link down")
                sim.klog(t + 4, node, f"mlx5_core {sim.topo.hca_pci[h]} ib0: Link up")
        elif kind == 2:
            running = [j for j in sim.jobs.values() if j.state == RUNNING and j.kind == "training"]
            if running:
                j = running[int(self.rng.integers(len(running)))]
                sim.log(
                    t,
                    f"job/{j.id}/rank0",
                    "/opt/conda/lib/python3.11/site-packages/torch/_utils.py:831: "
                    "UserWarning: TypedStorage is deprecated. It will be removed in the "
                    "future and UntypedStorage will be the only storage class.",
                )
        else:
            sim.klog(
                t,
                node,
                f"mlx5_core {sim.topo.hca_pci[0] if sim.topo.hca_pci else '0000:0c:00.0'}: "
                "mlx5_cmd_out_err:838:(pid 1441871): ACCESS_REG(0x805) op_mod(0x1) failed, status bad "
                "resource(0x5), syndrome (0x305684), err(-22)",
            )


JOB_LEVEL = {
    "software_error",
    "environment_error",
    "walltime_exceeded",
    "preemption",
    "rendezvous_failure",
    "numerical_divergence",
    "collective_hang",
    "inference_overload",
    "dataloader_bottleneck",
}
GPU_SCOPED = {"gpu_hardware_fault", "gpu_memory_error", "nvlink_error", "gpu_thermal", "gpu_oom"}
VARIANTS: dict[str, list[str]] = {
    "gpu_hardware_fault": ["xid79", "xid79", "xid119", "xid62"],
    "gpu_memory_error": ["xid48", "contained", "remap-failed"],
    "collective_hang": ["idle", "spin"],
    "rendezvous_failure": ["port-in-use", "store-timeout"],
    "storage_io": ["disk-full", "lustre-stall"],
    "numerical_divergence": ["deepspeed", "apex", "abort"],
    "software_error": ["keyerror", "shape", "attr", "assert", "index"],
    "environment_error": ["libcudart", "driver", "module", "arch"],
    "host_oom": ["cgroup", "cgroup", "dataloader"],
    "node_failure": ["silent", "panic"],
}
