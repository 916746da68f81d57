"""The simulation: cluster state as numpy arrays, a Slurm-like scheduler, workloads, faults, one tick at a time.

One code path serves both modes: accelerated runs call `run()` with a sink that writes files; the real-time
feed (collector) calls `step()` on a wall-clock schedule and reads `snapshot()`.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import logfmt
from .jobs import ENDED, EXIT, KINDS, NAMES, PENDING, RUNNING, USERS, Job, Scheduler
from .scenario import Scenario
from .topology import Topology, build_topology

GPU_MIN_AGE = 300.0  # Slurm MinJobAge: ended jobs stay visible to squeue for 5 minutes
SM_CLOCK = {"H100-80GB": 1980.0, "H200": 1980.0, "A100-80GB": 1410.0, "A100-40GB": 1410.0}
MEM_CLOCK = {"H100-80GB": 2619.0, "H200": 3201.0, "A100-80GB": 1593.0, "A100-40GB": 1215.0}

TTFT_BUCKETS = np.array([0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, np.inf])
E2E_BUCKETS = np.array([0.3, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 60.0, 120.0, np.inf])

# per-kind GPU profile: util %, SM active, tensor active, DRAM active, framebuffer fraction, power fraction
PROFILE = {
    "training": (98.0, 0.52, 0.18, 0.35, 0.82, 0.78),
    "inference": (75.0, 0.35, 0.10, 0.45, 0.90, 0.50),
    "short": (70.0, 0.40, 0.08, 0.25, 0.40, 0.45),
}


@dataclass
class GroundTruth:
    id: str
    root_cause: str
    kind: str  # "injected" (hardware/infrastructure or scheduled) or "user" (a job's own failure)
    onset: float
    node: str | None
    gpu: str | None
    job: str | None
    variant: str
    affected_jobs: list[str] = field(default_factory=list)
    gpu_bus_id: str | None = None  # the culprit GPU's address as dcgm-exporter labels it: the same device as `gpu`

    def as_dict(self, iso: Callable[[float], str]) -> dict[str, Any]:
        culprit = {k: v for k, v in (("node", self.node), ("gpu", self.gpu), ("job", self.job)) if v is not None}
        return {
            "id": self.id,
            "root_cause": self.root_cause,
            "kind": self.kind,
            "onset": iso(self.onset),
            "onset_ts": self.onset,
            "culprit": culprit,
            "variant": self.variant,
            "affected_jobs": sorted(set(self.affected_jobs), key=int),
        } | ({"gpu_bus_id": self.gpu_bus_id} if self.gpu is not None and self.gpu_bus_id else {})


class Simulation:
    def __init__(self, scenario: Scenario, seed: int | None = None) -> None:
        self.sc = scenario
        self.seed = scenario.seed if seed is None else seed
        self.rng = np.random.default_rng(self.seed)
        self.topo: Topology = build_topology(scenario.cluster, self.seed)
        self.t0 = scenario.start.timestamp()
        self.t = self.t0
        self.tick = scenario.tick_seconds
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0
        # log lines may be written ahead of their time (a cascade's later lines); released as time passes
        self._logs: list[tuple[float, int, str, str]] = []
        self.truth: list[GroundTruth] = []
        self.jobs: dict[int, Job] = {}
        self.next_job = scenario.workload.first_job_id
        self._init_state()
        self.sched = Scheduler(self.topo.n_nodes, self.topo.gpus_per_node, self.topo.node_partition)
        self.node_style = self.rng.integers(0, 4, self.topo.n_nodes)  # kernel log prefix per node (site style)
        self.uptime0 = self.rng.uniform(1e4, 3e6, self.topo.n_nodes)
        from .faults import FaultPlanner  # local import: faults use this module's types

        self.faults = FaultPlanner(self)
        self._fill_initially()

    # ---------------------------------------------------------------- state
    def _init_state(self) -> None:
        tp, G, N, H = self.topo, self.topo.n_gpus, self.topo.n_nodes, len(self.topo.hca_node)
        z = np.zeros
        self.gpu_job = np.full(G, -1, dtype=np.int64)
        self.gpu_busy = z(G, dtype=bool)
        self.prof = z((G, 6))
        self.util, self.sm, self.tensor, self.dram = z(G), z(G), z(G), z(G)
        self.fb_used = tp.gpu_fb_total * 0.005
        self.temp = self.rng.uniform(28, 34, G)
        self.mtemp = self.temp + 8
        self.power = tp.gpu_power_idle.astype(float).copy()
        self.energy = self.rng.uniform(1e9, 1e11, G)
        self.smclk = z(G)
        self.throttle = z(G, dtype=np.int64)
        self.xid = z(G)
        self.xid_code = z(G, dtype=np.int64)
        self.counters = {
            k: z(G)
            for k in (
                "therm_viol",
                "pow_viol",
                "sbe",
                "dbe",
                "unc_rows",
                "cor_rows",
                "nvl_crc",
                "nvl_replay",
                "nvl_bw",
                "pcie_replay",
            )
        }
        self.remap_fail = z(G)
        self.ov_util = np.full(G, np.nan)
        self.ov_sm = np.full(G, np.nan)
        self.heat = z(G)
        self.clk_factor = np.ones(G)
        self.thr_bits = z(G, dtype=np.int64)
        self.gpu_lost = z(G, dtype=bool)
        self.fb_full = z(G, dtype=bool)
        # nodes
        self.node_down = z(N, dtype=bool)
        self.node_drain = z(N, dtype=bool)
        self.drain_reason: dict[int, str] = {}
        self.mem_avail = tp.node_mem_bytes * self.rng.uniform(0.85, 0.95, N)
        self.mem_squeeze = z(N)  # 0..1, fault-driven
        self.load = self.rng.uniform(0.2, 2.0, N)
        self.load_extra = z(N)
        self.oom_kill = z(N)
        self.psi = {k: self.rng.uniform(0, 100, N) for k in ("cpu", "mem", "io")}
        self.io_stall = z(N)  # fraction of each second stalled on IO (fault-driven)
        nfs = len(tp.fs_specs)
        self.fs_avail = np.array([[s[3] * (1 - s[5])] * N for s in tp.fs_specs]).reshape(nfs, N) if nfs else z((0, N))
        self.fs_fill_rate = z((nfs, N))  # bytes/s consumed by faults
        # InfiniBand
        self.ib_state = np.full(H, 4.0)
        self.ib_phys = np.full(H, 5.0)
        self.ib = {k: z(H) for k in ("link_downed", "ler", "sym", "tx", "rx")}
        self.ib_err_rate = z(H)

    # ---------------------------------------------------------------- scheduling helpers
    def at(self, t: float, fn: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._events, (t, self._seq, fn))

    def after(self, delay: float, fn: Callable[[], None], base: float | None = None) -> None:
        self.at((self.t if base is None else base) + delay * self.sc.faults.cascade_scale, fn)

    def log(self, t: float, source: str, line: str) -> None:
        self._seq += 1
        heapq.heappush(self._logs, (t, self._seq, source, line))

    def drain_logs(self, upto: float) -> list[tuple[float, str, str]]:
        out = []
        while self._logs and self._logs[0][0] <= upto:
            t, _, source, line = heapq.heappop(self._logs)
            out.append((t, source, line))
        return out

    def klog(self, t: float, node: int, line: str) -> None:
        host = self.topo.node_names[node]
        prefix = logfmt.kernel_prefix(int(self.node_style[node]), t, host, self.uptime0[node] + (t - self.t0))
        self.log(t, f"node/{host}/kernel", prefix + line)

    def ctld(self, t: float, msg: str) -> None:
        self.log(t, "slurmctld", logfmt.slurmctld(t, msg))

    def iso(self, t: float) -> str:
        from datetime import UTC, datetime

        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

    # ---------------------------------------------------------------- jobs
    def new_job(self, kind: str, t: float, **kw: Any) -> Job:
        rng, tp = self.rng, self.topo
        gpu_parts = [i for i, n in enumerate(tp.partition_names) if tp.gpus_per_node[tp.node_partition == i].max() > 0]
        cpu_parts = [i for i in range(len(tp.partition_names)) if i not in gpu_parts] or gpu_parts
        part = int(rng.choice(cpu_parts if kind == "cpu" else gpu_parts)) if gpu_parts or cpu_parts else 0
        gpn = int(tp.gpus_per_node[tp.node_partition == part].max())
        n_part = int((tp.node_partition == part).sum())
        if kind == "training":
            n_nodes = int(min(n_part, rng.choice([1, 2, 2, 4, 4, 8])))
            gpus = gpn
            dur = float(rng.lognormal(math.log(self.sc.workload.mean_runtime), 0.6))
        elif kind == "inference":
            n_nodes, gpus, dur = 1, min(gpn, int(rng.choice([1, 2, 4]))), float(rng.uniform(4, 24) * 3600)
        elif kind == "short":
            n_nodes, gpus, dur = 1, min(gpn, int(rng.choice([1, 1, 2]))), float(rng.uniform(120, 1800))
        else:
            n_nodes, gpus, dur = 1, 0, float(rng.uniform(300, 7200))
        limit = float(rng.choice([3600, 4 * 3600, 12 * 3600, 24 * 3600, 48 * 3600]))
        # some users forget a realistic --time (about 5% of jobs at the published 40% failure share)
        forgot = rng.random() < self.sc.workload.user_failure_rate * 0.125
        limit = limit if forgot else max(limit, min(dur * 1.3, 48 * 3600))
        self.next_job += 1
        job = Job(
            id=self.next_job,
            name=str(rng.choice(NAMES[kind])),
            kind=kind,
            user=str(rng.choice(USERS)),
            partition=part,
            n_nodes=n_nodes,
            gpus_per_node=gpus,
            time_limit=limit,
            duration=dur,
            priority=int(rng.integers(1000, 5000)),
            submit=t,
            step_time=float(rng.uniform(0.3, 1.2)),
            data_frac=float(rng.uniform(0.02, 0.08)),
        )
        job.loss = float(rng.uniform(2.0, 3.5))
        for k, v in kw.items():
            setattr(job, k, v)
        if job.duration > job.time_limit and job.fate == "COMPLETED":
            job.fate = "TIMEOUT"
        elif job.uses_gpus and job.fate == "COMPLETED" and rng.random() < self.sc.workload.user_failure_rate:
            job.fate = "FAILED"
            job.fate_cause = str(
                rng.choice(
                    [
                        "software_error",
                        "software_error",
                        "software_error",
                        "environment_error",
                        "gpu_oom",
                        "host_oom",
                        "numerical_divergence",
                        "rendezvous_failure",
                    ]
                )
            )
            # user failures mostly happen early: ~10% of GPU time for ~40% of jobs
            job.duration = min(job.duration, float(rng.exponential(job.duration * 0.15)) + 60)
        elif rng.random() < 0.07 and job.fate == "COMPLETED":
            job.fate = "CANCELLED"
            job.duration = float(rng.uniform(60, job.duration))
        self.jobs[job.id] = job
        return job

    def _fill_initially(self) -> None:
        w = self.sc.workload
        kinds, weights = zip(*[(k, w.mix.get(k, 0.0)) for k in KINDS], strict=True)  # type: ignore[call-overload]
        p = np.array(weights) / sum(weights)
        target = w.initial_utilisation * max(1, self.topo.n_gpus)
        used, guard = 0, 0
        while used < target and guard < 10 * self.topo.n_nodes + 20:
            guard += 1
            kind = str(self.rng.choice(kinds, p=p))
            job = self.new_job(kind, self.t - float(self.rng.uniform(0, 3600)))
            if used + job.n_nodes * job.gpus_per_node > target + max(1.0, 0.1 * self.topo.n_gpus):
                del self.jobs[job.id]  # would overshoot the starting utilisation; draw another
                continue
            if not self._try_start(job, self.t):
                job.state = PENDING
                break
            # already partway through its run
            job.start = self.t - float(self.rng.uniform(0, min(job.duration * 0.8, 6 * 3600)))
            used += len(job.gpus)
        self._kinds, self._p = kinds, p

    def _try_start(self, job: Job, t: float) -> bool:
        nodes = self.sched.place(job)
        if nodes is None:
            return False
        job.nodes = nodes
        job.gpus = self.sched.allocate(job, nodes, self.topo.gpu_first, self.gpu_busy)
        job.state, job.start = RUNNING, t
        if len(job.gpus):
            self.gpu_job[job.gpus] = job.id
            prof = PROFILE.get(job.kind, PROFILE["short"])
            jitter = self.rng.normal(1.0, 0.02, (len(job.gpus), 6))
            self.prof[job.gpus] = np.array(prof) * jitter
        self._job_started_logs(job, t)
        return True

    def _job_started_logs(self, job: Job, t: float) -> None:
        src = f"job/{job.id}"
        host = self.topo.node_names[job.nodes[0]]
        self.ctld(
            t,
            f"sched: Allocate JobId={job.id} NodeList={','.join(self.topo.node_names[n] for n in job.nodes)} "
            f"#CPUs={8 * job.n_nodes} Partition={self.topo.partition_names[job.partition]}",
        )
        if job.kind == "training":
            self.log(
                t + 2,
                src,
                f"{host}:{int(self.rng.integers(1000, 60000))}:{int(self.rng.integers(1000, 60000))} "
                f"[0] NCCL INFO NET/IB : Using [0]mlx5_0:1/IB [1]mlx5_1:1/IB [2]mlx5_2:1/IB "
                f"[3]mlx5_3:1/IB ; OOB ib0:10.{job.nodes[0] % 250}.0.{job.id % 250}<0>",
            )
        elif job.kind == "inference":
            self.log(t + 5, src, "INFO:     Uvicorn running on http://0.0.0.0:8000 (Press CTRL+C to quit)")

    def end_job(self, job: Job, t: float, state: str, reason: str | None = None, exit_code: str | None = None) -> None:
        if job.state not in (RUNNING, PENDING):
            return
        was_running = job.state == RUNNING
        ec, rs = EXIT[state]
        job.state, job.end = state, t
        job.exit_code, job.reason = exit_code or ec, reason or rs
        if was_running:
            self.sched.release(job, self.gpu_busy)
            if len(job.gpus):
                self.gpu_job[job.gpus] = -1
                self.prof[job.gpus] = 0
                self.ov_util[job.gpus] = np.nan
                self.ov_sm[job.gpus] = np.nan
                self.fb_full[job.gpus] = False
        code = job.exit_code.split(":")
        self.ctld(
            t,
            f"_job_complete: JobId={job.id} " + (f"WTERMSIG {code[1]}" if code[1] != "0" else f"WEXITSTATUS {code[0]}"),
        )
        self.ctld(t, f"_job_complete: JobId={job.id} done")
        if job.requeue and state in ("NODE_FAIL", "PREEMPTED"):
            clone = self.new_job(
                job.kind,
                t,
                name=job.name,
                user=job.user,
                n_nodes=job.n_nodes,
                gpus_per_node=job.gpus_per_node,
                partition=job.partition,
                priority=job.priority + 100,
            )
            self.ctld(t, f"Requeuing JobId={job.id} as JobId={clone.id}")

    # ---------------------------------------------------------------- nodes
    def drain(self, node: int, t: float, reason: str) -> None:
        if self.node_drain[node]:
            return
        self.node_drain[node] = True
        self.sched.usable[node] = False
        self.drain_reason[node] = reason
        host = self.topo.node_names[node]
        self.ctld(t, f"update_node: node {host} reason set to: {reason}")
        self.ctld(t, f"update_node: node {host} state set to DRAINING")

    def set_down(self, node: int, t: float) -> None:
        self.node_down[node] = True
        self.sched.usable[node] = False
        self.gpu_lost[self.topo.gpus_of(node)] = True

    # ---------------------------------------------------------------- tick
    def step(self) -> float:
        """Advance one tick; returns the new simulated time."""
        t = self.t + self.tick
        while self._events and self._events[0][0] <= t:
            et, _, fn = heapq.heappop(self._events)
            saved, self.t = self.t, et
            fn()
            self.t = saved
        self.t = t
        self.faults.maybe_inject(t)
        self._arrivals(t)
        self._lifecycle(t)
        self._schedule(t)
        self._gpu_metrics()
        self._node_metrics()
        self._inference(t)
        self._workload_logs(t)
        return t

    def _arrivals(self, t: float) -> None:
        lam = self.sc.workload.arrivals_per_hour * self.tick / 3600.0
        for _ in range(int(self.rng.poisson(lam))):
            kind = str(self.rng.choice(self._kinds, p=self._p))
            self.new_job(kind, t)

    def _lifecycle(self, t: float) -> None:
        for job in list(self.jobs.values()):
            if job.state != RUNNING or job.start is None or job.effects.get("held"):
                continue
            limit_end = job.start + job.time_limit
            planned_end = job.start + job.duration
            if limit_end <= t and limit_end <= planned_end:
                self.faults.job_fate(job, "walltime_exceeded", limit_end)
            elif planned_end <= t:
                if job.fate == "FAILED" and job.fate_cause:
                    self.faults.job_fate(job, job.fate_cause, planned_end)
                elif job.fate == "CANCELLED":
                    host = self.topo.node_names[job.nodes[0]]
                    self.log(planned_end, f"job/{job.id}", logfmt.stepd_cancel(job.id, host, planned_end, None))
                    self.end_job(job, planned_end, "CANCELLED")
                else:
                    self.end_job(job, planned_end, "COMPLETED")
        # forget jobs that ended more than MinJobAge ago
        for jid in [j.id for j in self.jobs.values() if j.end is not None and t - j.end > GPU_MIN_AGE]:
            del self.jobs[jid]

    def _schedule(self, t: float) -> None:
        pending = sorted((j for j in self.jobs.values() if j.state == PENDING), key=lambda j: (-j.priority, j.submit))
        for job in pending:
            self._try_start(job, t)

    def _gpu_metrics(self) -> None:
        rng, G = self.rng, self.topo.n_gpus
        busy = self.gpu_job >= 0
        util_t, sm_t, ten_t, dram_t, fb_t, pow_t = self.prof.T
        util = np.where(busy, np.clip(util_t + rng.normal(0, 1.2, G), 0, 100), 0.0)
        util = np.where(np.isnan(self.ov_util), util, self.ov_util)
        act = util / 100.0
        self.util = np.round(util).astype(np.float64)
        sm = np.clip(sm_t * act + rng.normal(0, 0.02, G) * busy, 0, 1)
        self.sm = np.where(np.isnan(self.ov_sm), sm, self.ov_sm)
        self.tensor = np.clip(ten_t * act + rng.normal(0, 0.01, G) * busy, 0, 1)
        self.dram = np.clip(dram_t * act + rng.normal(0, 0.02, G) * busy, 0, 1)
        total = self.topo.gpu_fb_total
        fb = np.where(busy, total * np.clip(fb_t, 0, 0.99), total * 0.005)
        self.fb_used = np.where(self.fb_full, total * 0.995, fb)
        pmax, pidle = self.topo.gpu_power_max, self.topo.gpu_power_idle
        self.power = pidle + (pmax - pidle) * pow_t * act * self.clk_factor + rng.normal(0, 3, G)
        target = 30.0 + 50.0 * (self.power - pidle) / (pmax - pidle) + self.heat
        self.temp += (target - self.temp) * 0.35 + rng.normal(0, 0.3, G)
        self.mtemp = self.temp + 8 + rng.normal(0, 0.3, G)
        self.energy += self.power * self.tick * 1000
        base_clk = np.array([SM_CLOCK[k] for k in self.topo.gpu_model_key]) if G else np.zeros(0)
        self.smclk = np.where(busy, base_clk * self.clk_factor, 345.0)
        bits = np.where(busy, np.where(pow_t * act > 0.7, 0x04, 0), 0x01) | self.thr_bits
        self.throttle = bits
        thermal = (self.thr_bits & 0x68) > 0
        self.counters["therm_viol"] += thermal * self.tick * 1e9
        self.counters["pow_viol"] += ((bits & 0x04) > 0) * self.tick * 0.2e9
        multi = busy & (self.prof[:, 0] > 90)
        self.counters["nvl_bw"] += multi * rng.uniform(2e11, 4e11, G) * self.tick * act
        # benign noise: a correctable single-bit error now and then
        self.counters["sbe"] += rng.random(G) < 2e-5 * self.tick

    def _node_metrics(self) -> None:
        rng, tp, N = self.rng, self.topo, self.topo.n_nodes
        busy = self.sched.busy_jobs > 0
        self.load = np.clip(
            0.7 * self.load
            + 0.3 * (np.where(busy, tp.node_cpus * 0.25, 0.5) + self.load_extra)
            + rng.normal(0, 0.2, N),
            0,
            None,
        )
        frac = np.where(busy, rng.uniform(0.55, 0.7, N), rng.uniform(0.9, 0.95, N))
        self.mem_avail = tp.node_mem_bytes * np.clip(frac * (1 - self.mem_squeeze), 0.001, 1)
        self.psi["cpu"] += np.clip(self.load / tp.node_cpus - 0.8, 0, None) * self.tick + rng.uniform(0, 0.01, N)
        self.psi["mem"] += self.mem_squeeze**4 * self.tick * 0.8
        self.psi["io"] += self.io_stall * self.tick + rng.uniform(0, 0.002, N)
        self.fs_avail = np.clip(self.fs_avail - self.fs_fill_rate * self.tick, 0, None)
        H = len(tp.hca_node)
        if H:
            node_busy = busy[tp.hca_node] & (self.ib_state == 4)
            rate = np.where(node_busy, rng.uniform(5e9, 2e10, H), 1e5)
            self.ib["tx"] += rate * self.tick
            self.ib["rx"] += rate * self.tick
            self.ib["sym"] += rng.poisson(self.ib_err_rate * self.tick)

    def _workload_logs(self, t: float) -> None:
        every = max(1, int(300 / self.tick))  # a progress line every ~5 minutes of simulated time
        tick_no = round((t - self.t0) / self.tick)
        for job in self.jobs.values():
            if job.state != RUNNING or job.kind != "training" or job.start is None:
                continue
            slow = job.effects.get("slowdown", 1.0)
            starve = job.effects.get("data_starved", 0.0)
            step_s = job.step_time * slow / max(0.05, 1 - starve)
            data_s = step_s * max(job.data_frac, starve)
            job.step += int(self.tick / step_s) if not job.effects.get("hang") else 0
            if job.effects.get("nan"):
                job.loss = float("nan")
            else:
                job.loss = max(0.05, job.loss * (1 - 0.0005 * self.tick / 15) + float(self.rng.normal(0, 0.005)))
            if (tick_no + job.id) % every == 0 and not job.effects.get("hang"):
                style = job.id % 3
                self.log(
                    t,
                    f"job/{job.id}",
                    logfmt.train_progress(self.rng, style, job.step, 100000, job.loss, step_s, data_s, 3e-4),
                )

    def _inference(self, t: float) -> None:
        """vLLM-like serving: Poisson arrivals against a fixed batch capacity; the KV cache fills with the batch."""
        for job in self.jobs.values():
            if job.state != RUNNING or job.kind != "inference":
                continue
            v = job.effects.setdefault(
                "vllm",
                {
                    "rate": float(self.rng.uniform(0.5, 2.0)),
                    "cap": 256,
                    "waiting": 0.0,
                    "running": 0.0,
                    "kv": 0.1,
                    "preempt": 0.0,
                    "prompt": 0.0,
                    "gen": 0.0,
                    "ok": 0.0,
                    "ttft": np.zeros(len(TTFT_BUCKETS)),
                    "ttft_sum": 0.0,
                    "e2e": np.zeros(len(E2E_BUCKETS)),
                    "e2e_sum": 0.0,
                    "n": 0.0,
                },
            )
            rate = v["rate"] * job.effects.get("overload", 1.0)
            arrivals = float(self.rng.poisson(rate * self.tick))
            served_per_s = v["rate"] * 1.6  # headroom of 60% over the normal load
            queue = v["waiting"] + arrivals
            done = min(queue + v["running"], served_per_s * self.tick)
            v["running"] = float(min(v["cap"], queue))
            v["waiting"] = max(0.0, queue - done)
            v["kv"] = float(
                np.clip(
                    v["running"] / v["cap"] * 0.9 + self.rng.normal(0, 0.01) + (0.12 if v["waiting"] > v["cap"] else 0),
                    0.02,
                    1.0,
                )
            )
            if v["kv"] >= 0.99:
                v["preempt"] += float(self.rng.poisson(3 * self.tick / 15))
            wait_s = v["waiting"] / served_per_s
            ttft = 0.05 + wait_s + float(self.rng.exponential(0.05))
            v["prompt"] += done * 900
            v["gen"] += done * 250
            v["ok"] += done
            v["n"] += done
            v["ttft"] += done * (ttft <= TTFT_BUCKETS)
            v["ttft_sum"] += done * ttft
            e2e = ttft + 250 * 0.02
            v["e2e"] += done * (e2e <= E2E_BUCKETS)
            v["e2e_sum"] += done * e2e
            if round((t - self.t0) / self.tick) % max(1, int(60 / self.tick)) == 0:
                self.log(
                    t,
                    f"job/{job.id}",
                    f"(APIServer pid=7151) INFO {self.iso(t)[5:10]} "
                    f"{self.iso(t)[11:19]} [loggers.py:273] Engine 000: Avg prompt throughput: "
                    f"{done * 900 / self.tick:.1f} tokens/s, Avg generation throughput: {done * 250 / self.tick:.1f} "
                    f"tokens/s, Running: {int(v['running'])} reqs, Waiting: {int(v['waiting'])} reqs, GPU KV cache "
                    f"usage: {v['kv'] * 100:.1f}%, Prefix cache hit rate: 12.3%",
                )
            if v["kv"] >= 0.99 and self.rng.random() < 0.3:
                self.log(
                    t,
                    f"job/{job.id}",
                    f"WARNING {self.iso(t)[5:10]} {self.iso(t)[11:19]} scheduler.py:1057 "
                    "Sequence group 0 is preempted by PreemptionMode.RECOMPUTE mode because there is not enough "
                    "KV cache space. This can affect the end-to-end performance. Increase gpu_memory_utilization "
                    f"or tensor_parallel_size to provide more KV cache memory. total_cumulative_preemption_cnt="
                    f"{int(v['preempt']) + 1}",
                )

    # ---------------------------------------------------------------- views used by the outputs
    def node_state(self) -> list[str]:
        out = []
        for n in range(self.topo.n_nodes):
            if self.node_down[n]:
                out.append("down")
            elif self.node_drain[n]:
                out.append("drain")
            else:
                gpn = int(self.topo.gpus_per_node[n])
                free = int(self.sched.free_gpus[n])
                if self.sched.busy_jobs[n] == 0:
                    out.append("idle")
                elif gpn and free == 0:
                    out.append("alloc")
                else:
                    out.append("mix")
        return out

    def visible_jobs(self) -> list[Job]:
        return [j for j in self.jobs.values() if j.state in (PENDING, RUNNING) or j.state in ENDED]

    def run(
        self,
        duration: float,
        on_tick: Callable[[Simulation], None] | None = None,
        progress: Callable[[int], object] | None = None,
    ) -> None:
        n = round(duration / self.tick)
        for _ in range(n):
            self.step()
            if on_tick is not None:
                on_tick(self)
            if progress is not None:
                progress(1)
