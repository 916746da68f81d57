"""Turn the simulation state into samples under the exporters' real names and labels.

Samples come out in blocks — one metric name, an array of label-set ids, an array of values — so a tick over
thousands of GPUs costs a few numpy operations. Label sets are JSON strings (sorted keys) interned in
`LabelTable`; the GPU label sets carry dcgm-exporter's `hpc_job` label while a job holds the GPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .engine import E2E_BUCKETS, MEM_CLOCK, TTFT_BUCKETS, Simulation
from .jobs import RUNNING, Job
from .topology import labels_json

XID_MSG = {
    0: "No Error",
    79: "GPU has fallen off the bus",
    48: "DBE (Double Bit Error) ECC Error",
    94: "Contained ECC error",
    95: "Uncontained ECC error",
    74: "NVLink Error",
    119: "GSP RPC Timeout",
    62: "Internal micro-controller halt",
}


class LabelTable:
    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.strings: list[str] = []

    def id(self, labels: dict[str, str]) -> int:
        s = labels_json(labels)
        i = self.ids.get(s)
        if i is None:
            i = self.ids[s] = len(self.strings)
            self.strings.append(s)
        return i


@dataclass
class Block:
    name: str
    label_ids: np.ndarray  # int64
    values: np.ndarray  # float64


class SampleBuilder:
    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.labels = LabelTable()
        tp = sim.topo
        self._gpu_base = np.array([self.labels.id(lb) for lb in tp.gpu_labels], dtype=np.int64)
        self._gpu_ids = self._gpu_base.copy()
        self._gpu_job_seen = np.full(tp.n_gpus, -1, dtype=np.int64)
        self._job_label: dict[tuple[int, int], int] = {}
        self._node_ids = np.array([self.labels.id(lb) for lb in tp.node_labels], dtype=np.int64)
        self._up_ids = np.array(
            [self.labels.id({"instance": lb["instance"], "job": "node"}) for lb in tp.node_labels], dtype=np.int64
        )
        self._hca_ids = np.array([self.labels.id(lb) for lb in tp.hca_labels], dtype=np.int64)
        self._fs_ids = np.array(
            [
                [
                    self.labels.id({"instance": f"{n}:9100", "device": fs[2], "mountpoint": fs[0], "fstype": fs[1]})
                    for n in tp.node_names
                ]
                for fs in tp.fs_specs
            ],
            dtype=np.int64,
        ).reshape(len(tp.fs_specs), tp.n_nodes)
        self._mem_clock = np.array([MEM_CLOCK[k] for k in tp.gpu_model_key]) if tp.n_gpus else np.zeros(0)
        self._empty = self.labels.id({})
        self._cache: dict[tuple[object, ...], int] = {}
        self._xid0 = np.array(
            [self.labels.id({**lb, "err_code": "0", "err_msg": XID_MSG[0]}) for lb in tp.gpu_labels], dtype=np.int64
        )

    def _gpu_label_ids(self) -> np.ndarray:
        sim = self.sim
        changed = np.flatnonzero(sim.gpu_job != self._gpu_job_seen)
        for g in changed.tolist():
            j = int(sim.gpu_job[g])
            if j < 0:
                self._gpu_ids[g] = self._gpu_base[g]
            else:
                key = (g, j)
                if key not in self._job_label:
                    self._job_label[key] = self.labels.id({**sim.topo.gpu_labels[g], "hpc_job": str(j)})
                self._gpu_ids[g] = self._job_label[key]
        self._gpu_job_seen = sim.gpu_job.copy()
        return self._gpu_ids

    def blocks(self) -> list[Block]:
        sim, tp = self.sim, self.sim.topo
        out: list[Block] = []
        gmask = ~sim.gpu_lost & ~sim.node_down[tp.gpu_node] if tp.n_gpus else np.zeros(0, dtype=bool)
        ids = self._gpu_label_ids()[gmask]

        def gpu(name: str, values: np.ndarray) -> None:
            out.append(Block(name, ids, np.asarray(values, dtype=np.float64)[gmask]))

        c = sim.counters
        total = tp.gpu_fb_total
        gpu("DCGM_FI_DEV_GPU_UTIL", sim.util)
        gpu("DCGM_FI_PROF_GR_ENGINE_ACTIVE", np.round(np.clip(sim.sm * 1.15, 0, 1), 6))
        gpu("DCGM_FI_PROF_SM_ACTIVE", np.round(sim.sm, 6))
        gpu("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", np.round(sim.tensor, 6))
        gpu("DCGM_FI_PROF_DRAM_ACTIVE", np.round(sim.dram, 6))
        gpu("DCGM_FI_DEV_FB_USED", np.round(sim.fb_used))
        gpu("DCGM_FI_DEV_FB_FREE", np.round(total - sim.fb_used))
        gpu("DCGM_FI_DEV_GPU_TEMP", np.round(sim.temp))
        gpu("DCGM_FI_DEV_MEMORY_TEMP", np.round(sim.mtemp))
        gpu("DCGM_FI_DEV_POWER_USAGE", np.round(sim.power, 3))
        gpu("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", np.round(sim.energy))
        gpu("DCGM_FI_DEV_SM_CLOCK", np.round(sim.smclk))
        gpu("DCGM_FI_DEV_MEM_CLOCK", self._mem_clock)
        gpu("DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", sim.throttle)
        gpu("DCGM_FI_DEV_THERMAL_VIOLATION", c["therm_viol"])
        gpu("DCGM_FI_DEV_POWER_VIOLATION", c["pow_viol"])
        gpu("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", c["sbe"])
        gpu("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", c["dbe"])
        gpu("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", c["unc_rows"])
        gpu("DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", c["cor_rows"])
        gpu("DCGM_FI_DEV_ROW_REMAP_FAILURE", sim.remap_fail)
        gpu("DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL", c["nvl_crc"])
        gpu("DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL", c["nvl_replay"])
        gpu("DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", np.round(c["nvl_bw"]))
        gpu("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", c["pcie_replay"])
        # Xid: err_code/err_msg labels (idle value err_code="0"); no hpc_job on this family
        xid_ids = self._xid0.copy()
        for g in np.flatnonzero(sim.xid_code).tolist():
            code = int(sim.xid_code[g])
            xid_ids[g] = self.labels.id({**tp.gpu_labels[g], "err_code": str(code), "err_msg": XID_MSG.get(code, "")})
        out.append(Block("DCGM_FI_DEV_XID_ERRORS", xid_ids[gmask], sim.xid[gmask].astype(np.float64)))
        self._node_blocks(out)
        self._slurm_blocks(out)
        self._job_blocks(out)
        return out

    def _node_blocks(self, out: list[Block]) -> None:
        sim, tp = self.sim, self.sim.topo
        up = ~sim.node_down
        ids = self._node_ids[up]

        def node(name: str, values: np.ndarray) -> None:
            out.append(Block(name, ids, np.asarray(values, dtype=np.float64)[up]))

        node("node_memory_MemTotal_bytes", tp.node_mem_bytes)
        node("node_memory_MemAvailable_bytes", np.round(sim.mem_avail))
        node("node_vmstat_oom_kill", sim.oom_kill)
        node("node_pressure_cpu_waiting_seconds_total", np.round(sim.psi["cpu"], 6))
        node("node_pressure_memory_stalled_seconds_total", np.round(sim.psi["mem"], 6))
        node("node_pressure_io_stalled_seconds_total", np.round(sim.psi["io"], 6))
        for f, spec in enumerate(tp.fs_specs):
            out.append(Block("node_filesystem_size_bytes", self._fs_ids[f][up], np.full(int(up.sum()), spec[3])))
            out.append(Block("node_filesystem_avail_bytes", self._fs_ids[f][up], np.round(sim.fs_avail[f][up])))
        hup = up[tp.hca_node] if len(tp.hca_node) else np.zeros(0, dtype=bool)
        hids = self._hca_ids[hup]
        for name, arr in (
            ("node_infiniband_state_id", sim.ib_state),
            ("node_infiniband_physical_state_id", sim.ib_phys),
            ("node_infiniband_link_downed_total", sim.ib["link_downed"]),
            ("node_infiniband_link_error_recovery_total", sim.ib["ler"]),
            ("node_infiniband_symbol_error_total", sim.ib["sym"]),
            ("node_infiniband_port_data_transmitted_bytes_total", np.round(sim.ib["tx"])),
            ("node_infiniband_port_data_received_bytes_total", np.round(sim.ib["rx"])),
        ):
            out.append(Block(name, hids, np.asarray(arr, dtype=np.float64)[hup]))
        out.append(Block("up", self._up_ids, up.astype(np.float64)))

    def _slurm_blocks(self, out: list[Block]) -> None:
        sim = self.sim
        states = sim.node_state()
        e = np.array([self._empty], dtype=np.int64)
        for st in ("alloc", "idle", "mix", "drain", "down"):
            out.append(Block(f"slurm_nodes_{st}", e, np.array([float(states.count(st))])))
        counts: dict[str, int] = {}
        for j in sim.jobs.values():
            counts[j.state] = counts.get(j.state, 0) + 1
        for name, st in (
            ("pending", "PENDING"),
            ("running", "RUNNING"),
            ("completed", "COMPLETED"),
            ("failed", "FAILED"),
            ("timeout", "TIMEOUT"),
            ("preempted", "PREEMPTED"),
            ("node_fail", "NODE_FAIL"),
            ("cancelled", "CANCELLED"),
        ):
            out.append(Block(f"slurm_queue_{name}", e, np.array([float(counts.get(st, 0))])))
        out.append(Block("slurm_jobs_outofmemory", e, np.array([float(counts.get("OUT_OF_MEMORY", 0))])))

    def _cached(self, key: tuple[object, ...], make: Callable[..., dict[str, str]], *args: object) -> int:
        """Label-set id for a per-job series; the JSON is built once, when the key is first seen."""
        i = self._cache.get(key)
        if i is None:
            i = self._cache[key] = self.labels.id(make(*args))
        return i

    def _info_labels(self, j: Job) -> dict[str, str]:
        tp = self.sim.topo
        return {
            "job_id": str(j.id),
            "name": j.name,
            "user": j.user,
            "partition": tp.partition_names[j.partition],
            "state": j.state,
            "nodes": ",".join(tp.node_names[n] for n in j.nodes),
            "gpus": str(len(j.gpus)),
            "exit_code": j.exit_code,
            "reason": j.reason,
        }

    def _vllm_labels(self, j: Job, extra: dict[str, str]) -> dict[str, str]:
        return {
            "model_name": "astrocode",
            "engine": "0",
            "instance": f"{self.sim.topo.node_names[j.nodes[0]]}:8000",
            "job_id": str(j.id),
            **extra,
        }

    def _train_labels(self, j: Job, i: int, n: int) -> dict[str, str]:
        return {
            "job_id": str(j.id),
            "rank": str(i * max(1, j.gpus_per_node)),
            "hostname": self.sim.topo.node_names[n],
            "workload": j.name,
        }

    def _job_blocks(self, out: list[Block]) -> None:
        sim = self.sim
        info_ids, vl, tr = [], [], []
        for j in sorted(sim.jobs.values(), key=lambda j: j.id):
            info_ids.append(
                self._cached(("info", j.id, j.state, j.exit_code, j.reason, len(j.nodes)), self._info_labels, j)
            )
            if j.state != RUNNING:
                continue
            if j.kind == "inference" and "vllm" in j.effects:
                vl.append(j)
            elif j.kind == "training" and not (j.effects.get("hang") or sim.node_down[j.nodes].any()):
                tr.append(j)
        out.append(Block("hpcmind_slurm_job_info", np.array(info_ids, dtype=np.int64), np.ones(len(info_ids))))
        self._vllm(out, vl)
        self._train(out, tr)

    def _vllm(self, out: list[Block], jobs: list[Job]) -> None:
        rows: dict[str, tuple[list[int], list[float]]] = {}

        def add(name: str, j: Job, value: float, extra: dict[str, str] | None = None) -> None:
            r = rows.setdefault(name, ([], []))
            key = (name, j.id, *sorted((extra or {}).items()))
            r[0].append(self._cached(key, self._vllm_labels, j, extra or {}))
            r[1].append(value)

        for j in jobs:
            v = j.effects["vllm"]
            for name, value in (
                ("vllm:num_requests_running", v["running"]),
                ("vllm:num_requests_waiting", v["waiting"]),
                ("vllm:kv_cache_usage_perc", round(v["kv"], 4)),
                ("vllm:num_preemptions_total", v["preempt"]),
                ("vllm:prompt_tokens_total", v["prompt"]),
                ("vllm:generation_tokens_total", v["gen"]),
            ):
                add(name, j, value)
            add("vllm:request_success_total", j, v["ok"], {"finished_reason": "stop"})
            for hname, buckets, counts, total in (
                ("vllm:time_to_first_token_seconds", TTFT_BUCKETS, v["ttft"], v["ttft_sum"]),
                ("vllm:e2e_request_latency_seconds", E2E_BUCKETS, v["e2e"], v["e2e_sum"]),
            ):
                for le, cnt in zip(buckets, counts, strict=True):
                    add(hname + "_bucket", j, float(cnt), {"le": "+Inf" if math.isinf(le) else repr(float(le))})
                add(hname + "_sum", j, round(total, 6))
                add(hname + "_count", j, v["n"])
        for name, (ids, vals) in rows.items():
            out.append(Block(name, np.array(ids, dtype=np.int64), np.array(vals, dtype=np.float64)))

    def _train(self, out: list[Block], jobs: list[Job]) -> None:
        sim = self.sim
        names = (
            "astro_train_step_seconds",
            "astro_train_data_wait_seconds",
            "astro_train_samples_per_second",
            "astro_train_loss",
            "astro_train_grad_norm",
            "astro_train_steps_total",
        )
        ids: list[int] = []
        cols: list[np.ndarray] = []
        for j in jobs:
            slow = j.effects.get("slowdown", 1.0)
            starve = j.effects.get("data_starved", 0.0)
            step_s = j.step_time * slow / max(0.05, 1 - starve)
            k = len(j.nodes)
            ids += [self._cached(("train", j.id, n), self._train_labels, j, i, n) for i, n in enumerate(j.nodes)]
            jitter = sim.rng.normal(1.0, 0.02, k)
            grad = np.full(k, np.nan) if math.isnan(j.loss) else np.abs(sim.rng.normal(1.0, 0.2, k))
            cols.append(
                np.stack(
                    [
                        step_s * jitter,
                        step_s * max(j.data_frac, starve) * jitter,
                        256 / (step_s * jitter) / k,
                        np.full(k, j.loss),
                        grad,
                        np.full(k, float(j.step)),
                    ]
                )
            )
        if not ids:
            return
        vals = np.round(np.concatenate(cols, axis=1), 6)
        lid = np.array(ids, dtype=np.int64)
        for r, name in enumerate(names):
            out.append(Block(name, lid, vals[r]))
