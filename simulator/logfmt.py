"""Log lines in the exact formats real clusters print (shared/reference/gpu-cluster-signals.md §1, §3.6, §5).

Several variants per message (driver, PyTorch, NCCL versions; dmesg and syslog prefixes); the caller's
random generator picks one, so a run is reproducible from its seed.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

Rng = np.random.Generator


def pick(rng: Rng, options: list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def kernel_prefix(style: int, ts: float, host: str, uptime: float) -> str:
    dt = datetime.fromtimestamp(ts, UTC)
    if style == 0:
        return f"[{uptime:12.6f}] "
    if style == 1:
        return f"{dt:%b %d %H:%M:%S} {host} kernel: "
    if style == 2:
        return f"[{dt:%a %b %d %H:%M:%S %Y}] "
    return f"{dt:%Y-%m-%dT%H:%M:%S.%f}+00:00 {host} kernel: [{uptime:12.6f}] "


XID_TEXT = {
    79: "GPU has fallen off the bus.",
    48: "An uncorrectable double bit error (DBE) has been detected on GPU in the framebuffer at physAddr 0x{addr:x} "
    "partition {p}, subpartition {sp}",
    63: "Row Remapper: New row marked for remapping, reset gpu to activate",
    64: "Row Remapper: Failed to remap row",
    94: "Contained: CE User Channel (0x9). RST: No, D-RST: No",
    95: "Uncontained: LTC TAG (0x2, 0x1). RST: Yes, D-RST: No",
    74: "NVLink: fatal error detected on link {link}",
    119: "Timeout after 6s of waiting for RPC response from GPU{gpu} GSP! Expected function 76 (GSP_RM_CONTROL) "
    "(0x20803039 0x8).",
    62: "Internal micro-controller halt (0x{addr:x})",
    13: "Graphics SM Warp Exception on (GPC 1, TPC 0): Out Of Range Address",
    31: "channel 0x00000002, intr 00000000. MMU Fault: ENGINE GRAPHICS GPC6 GPCCLIENT_T1_13 faulted @ 0x6f6f_320c2000. "
    "Fault is of type FAULT_PDE ACCESS_TYPE_VIRT_READ",
    154: "GPU recovery action changed from 0x0 (None) to 0x{action} ({action_text})",
}


def xid_line(rng: Rng, pci: str, code: int, pid: int | None, proc: str, gpu: int) -> str:
    body = XID_TEXT[code].format(
        addr=int(rng.integers(1 << 20, 1 << 36)),
        p=int(rng.integers(8)),
        sp=int(rng.integers(2)),
        link=int(rng.integers(18)),
        gpu=gpu,
        action=1 if code != 79 else 2,
        action_text="GPU Reset Required" if code != 79 else "Node Reboot Required",
    )
    variant = int(rng.integers(3))
    if variant == 0 or pid is None:
        who = "pid='<unknown>', name=<unknown>, "
    elif variant == 1:
        who = f"pid={pid}, name={proc}, "
    else:
        who = f"pid={pid}, "
    if variant == 2 and code == 79:
        return f"NVRM: Xid ({pci}): 79, GPU has fallen off the bus."  # very old drivers drop pid/name
    return f"NVRM: Xid ({pci}): {code}, {who}{body}"


def cuda_oom(rng: Rng, gpu: int, total_gib: float) -> list[str]:
    alloc = round(float(rng.uniform(0.5, 8.0)), 2)
    free = round(float(rng.uniform(0.05, 1.0)), 2)
    used = round(total_gib - free - 0.3, 2)
    v = int(rng.integers(3))
    if v == 0:
        return [
            f"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate {alloc:.2f} GiB. GPU {gpu} has a total "
            f"capacity of {total_gib:.2f} GiB of which {free:.2f} GiB is free. Including non-PyTorch memory, this "
            f"process has {used:.2f} GiB memory in use. Of the allocated memory {used - 2:.2f} GiB is allocated by "
            "PyTorch, and 1.02 GiB is reserved by PyTorch but unallocated. If reserved but unallocated memory is "
            "large try setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See "
            "documentation for Memory Management  (https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)"
        ]
    if v == 1:
        return [
            f"torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate {alloc:.2f} GiB (GPU {gpu}; "
            f"{total_gib:.2f} GiB total capacity; {used - 1:.2f} GiB already allocated; {free:.2f} GiB free; "
            f"{used:.2f} GiB reserved in total by PyTorch) If reserved memory is >> allocated memory try setting "
            "max_split_size_mb to avoid fragmentation.  See documentation for Memory Management and "
            "PYTORCH_CUDA_ALLOC_CONF"
        ]
    return [
        "RuntimeError: CUDA error: out of memory",
        "CUDA kernel errors might be asynchronously reported at some other API call, so the stacktrace below might "
        "be incorrect.",
        "For debugging consider passing CUDA_LAUNCH_BLOCKING=1",
    ]


def traceback_head(rng: Rng, script: str) -> list[str]:
    line = int(rng.integers(40, 400))
    return [
        "Traceback (most recent call last):",
        f'  File "/home/astro/{script}", line {line}, in <module>',
        "    main()",
        f'  File "/home/astro/{script}", line {line - 20}, in main',
        "    loss = step(model, batch)",
    ]


def nccl_watchdog(rng: Rng, rank: int, seq: int, timeout_ms: int, ts: float) -> str:
    dt = datetime.fromtimestamp(ts, UTC)
    op = pick(rng, ["ALLREDUCE", "ALLREDUCE", "_ALLGATHER_BASE", "_REDUCE_SCATTER_BASE", "BROADCAST"])
    ran = timeout_ms + int(rng.integers(20, 2000))
    if rng.integers(2):
        return (
            f"[rank{rank}]:[E{dt:%m%d} {dt:%H:%M:%S}.{int(rng.integers(10**9)):09d} ProcessGroupNCCL.cpp:616] "
            f"[Rank {rank}] Watchdog caught collective operation timeout: WorkNCCL(SeqNum={seq}, OpType={op}, "
            f"NumelIn={int(rng.integers(1, 1 << 24))}, NumelOut={int(rng.integers(1, 1 << 24))}, "
            f"Timeout(ms)={timeout_ms}) ran for {ran} milliseconds before timing out."
        )
    return (
        f"[rank{rank}]:[E ProcessGroupNCCL.cpp:563] [Rank {rank}] Watchdog caught collective operation timeout: "
        f"WorkNCCL(SeqNum={seq}, OpType={op}, Timeout(ms)={timeout_ms}) ran for {ran} milliseconds before timing out."
    )


def nccl_abort_tail(rank: int) -> list[str]:
    return [
        f"[rank{rank}]:[E ProcessGroupNCCL.cpp:1540] [PG 0 Rank {rank}] Some NCCL operations have failed or timed "
        "out. Due to the asynchronous nature of CUDA kernels, subsequent GPU operations might run on "
        "corrupted/incomplete data.",
        f"[rank{rank}]:[E ProcessGroupNCCL.cpp:1546] [PG 0 Rank {rank}] To avoid data inconsistency, we are taking "
        "the entire process down.",
        "terminate called after throwing an instance of 'c10::DistBackendError'",
    ]


def stepd_cancel(job: int, node: str, ts: float, why: str | None, step: str | None = None) -> str:
    dt = datetime.fromtimestamp(ts, UTC)
    what = f"STEP {job}.{step}" if step else f"JOB {job}"
    tail = f" DUE TO {why}" if why else ""
    return f"slurmstepd: error: *** {what} ON {node} CANCELLED AT {dt:%Y-%m-%dT%H:%M:%S}{tail} ***"


def slurmctld(ts: float, msg: str) -> str:
    dt = datetime.fromtimestamp(ts, UTC)
    return f"[{dt:%Y-%m-%dT%H:%M:%S}.{int(ts * 1000) % 1000:03d}] {msg}"


def train_progress(
    rng: Rng, style: int, step: int, total: int, loss: float, step_s: float, data_s: float, lr: float
) -> str:
    if style == 0:
        return (
            f" iteration {step:>8}/{total:>8} | consumed samples: {step * 256:>12} | elapsed time per iteration "
            f"(ms): {step_s * 1000:.1f} | learning rate: {lr:.6E} | global batch size: 256 | lm loss: "
            f"{loss:.6E} | loss scale: 1.0 | number of skipped iterations:   0 | number of nan iterations:   0 |"
        )
    if style == 1:
        return (
            f"Epoch: [{step // 500}][{step % 500}/500]\tTime {step_s:.3f} ({step_s:.3f})\tData {data_s:.3f} "
            f"({data_s:.3f})\tLoss {loss:.4f} ({loss:.4f})"
        )
    return f"step={step} loss={loss:.4f} step_time={step_s:.3f} data_wait={data_s:.3f} lr={lr:.2e}"
