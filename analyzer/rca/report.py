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


# A signature that pins down the mechanism gets its own first step, before the cause's generic ones.
_SHM = "Enlarge /dev/shm (--shm-size or --ipc=host for containers) or use fewer DataLoader workers"
_MEM = "Request more memory (--mem / --mem-per-gpu); sacct -j <job> -o MaxRSS,ReqMem shows the peak"
_KV = "KV cache exhausted: lower --max-num-seqs or --max-model-len, raise --gpu-memory-utilization, add replicas"
_FP16 = "fp16 overflow: train in bf16, lower the learning rate, clip gradients"
_ARCH = "Install or build for this GPU's compute capability and the installed driver (TORCH_CUDA_ARCH_LIST)"
SIGNATURE_STEPS: dict[str, str] = {
    "nvml-init-failed": (
        "Restart the container: NVML lost its GPUs when the host re-applied cgroups (systemctl daemon-reload); "
        "pass the devices explicitly (CDI / --device) so it does not recur"
    ),
    "rdma-memlock": (
        "Raise the locked-memory limit: ulimit -l unlimited (limits.conf, LimitMEMLOCK=infinity for slurmd, "
        "--ulimit memlock=-1 for containers)"
    ),
    "out-of-shm": _SHM,
    "dataloader-bus-error": _SHM,
    "quota": "Free space or raise the quota (lfs quota -u $USER <fs>, quota -s); move caches (HF_HOME) off $HOME",
    "enospc": "Free space on the full file system (df -h); point checkpoints and caches (HF_HOME, TMPDIR) at scratch",
    "torch-save-failed": "Check free space where the checkpoint was written (df -h): a full disk truncates torch.save",
    "hung-task": "Find what the blocked task waits on (cat /proc/<pid>/stack) and check that file system's servers",
    "slurm-mem-limit": _MEM,
    "slurm-oom-kill": _MEM,
    "container-oom-killed": "Raise the container's memory limit or lower the workload's host memory use",
    "slurm-time-limit": "Resume from the last checkpoint with a longer --time (--signal=USR1@120 to checkpoint first)",
    "socket-failed-listen": "Use a per-job port: MASTER_PORT=$((10000 + SLURM_JOB_ID % 50000))",
    "driver-insufficient": (
        "Match the CUDA runtime to the driver: nvidia-smi shows the newest CUDA the driver supports; "
        "load that toolkit or container"
    ),
    "no-kernel-image": _ARCH,
    "wrong-arch-build": _ARCH,
    "vllm-no-cache-memory": "The KV cache does not fit: raise --gpu-memory-utilization or lower --max-model-len",
    "vllm-kv-preempt": _KV,
    "vllm-kv-cache-full": _KV,
    "fp16-overflow": _FP16,
    "loss-scale-minimum": _FP16,
    "loss-scale-collapsed": _FP16,
    "job-sigterm-at-limit": (
        "Compare the job's elapsed time with its limit (sacct -j <job> -o Elapsed,Timelimit,State); resume from "
        "the last checkpoint with a longer --time"
    ),
    "inference-engine-stalled": (
        "The engine stopped scheduling with requests queued: capture its stack (py-spy dump --pid <pid>), restart "
        "it, and retry on a release without the regression (or with chunked prefill / multi-step off)"
    ),
}


def remediation(cause: str, culprit: Culprit, signatures: Sequence[str] = ()) -> list[str]:
    if cause == UNKNOWN:
        return [
            "Collect the kernel log (dmesg -T), the job's stderr and `scontrol show job` for the affected job",
            "Check DCGM and node_exporter dashboards around the alert time",
        ]
    steps: list[str] = []
    drain = cause in HARDWARE and bool(culprit.node)
    requeue = cause in RESTARTABLE and bool(culprit.job)
    if drain:
        steps.append(
            f'Drain {culprit.node}: scontrol update nodename={culprit.node} state=drain reason="hpcmind:{cause}"'
        )
    steps += list(dict.fromkeys(SIGNATURE_STEPS[s] for s in signatures if s in SIGNATURE_STEPS))[:2]
    for generic in (s.strip() for s in root_causes()[cause].remediation.split(",") if s.strip()):
        g = generic.lower()
        if drain and g.startswith("drain and "):  # "drain and reboot the node": the drain is step 1 already
            generic, g = generic[len("drain and ") :], g[len("drain and ") :]
        # a concrete step already says it: "Drain gpu-a001: scontrol ..." then "drain the node" is noise, as is
        # "request more --mem" after "Request more memory (--mem ...)"
        if (
            (drain and g.startswith("drain"))
            or (requeue and g.startswith("requeue"))
            or _lead(g) in {_lead(x.lower()) for x in steps}
        ):
            continue
        first = generic.split()[0]
        steps.append(generic if "_" in first or "-" in first else generic[0].upper() + generic[1:])
    if requeue:
        steps.append(f"Requeue job {culprit.job} from its last checkpoint (scontrol requeue {culprit.job})")
    return [_filled(s, culprit) for s in dict.fromkeys(steps)]


def _lead(step: str) -> str:
    return " ".join(step.replace("(", " ").split()[:2])


def _filled(step: str, c: Culprit) -> str:
    """Placeholders the bundle can answer, answered: `sacct -j <job>` becomes `sacct -j 4211`."""
    if c.job:
        step = step.replace("<job>", c.job)
    if c.node:
        step = step.replace("<node>", c.node)
    return step
