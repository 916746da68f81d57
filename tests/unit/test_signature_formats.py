"""Real-world log formats beyond the reference samples (launcher prefixes, other frameworks, other schedulers)."""

from __future__ import annotations

import pytest

from analyzer.rca import SignatureEngine
from hpcmind.contract import Diagnosis, parse_bundle


def diagnose(lines: list[str], source: str = "job") -> Diagnosis:
    return SignatureEngine().diagnose(parse_bundle({"logs": [{"source": source, "line": ln} for ln in lines]}))


CASES: list[tuple[str, list[str]]] = [
    ("gpu_oom", ["node01:1234:1245 [0] NCCL WARN Cuda failure 'out of memory'"]),
    ("gpu_oom", ["RuntimeError: CUDA error: CUBLAS_STATUS_NOT_INITIALIZED when calling `cublasCreate(handle)`"]),
    ("gpu_oom", ["[rank0]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"]),
    (
        "gpu_oom",
        [
            "ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when initializing the engine."
        ],
    ),
    ("host_oom", ["Bus error (core dumped)"]),
    ("host_oom", ["[rank3]: Killed"]),
    (
        "host_oom",
        [
            "torch.distributed.elastic.multiprocessing.api:failed (exitcode: -9) local_rank: 0 (pid: 12) of binary: /usr/bin/python3",
            "traceback : Signal 9 (SIGKILL) received by PID 12",
        ],
    ),
    ("collective_hang", ["RuntimeError: Rank 1 failed to pass monitoredBarrier in 1800000 ms"]),
    # wordings of analyzer/corpus/catalog/templates.yaml (Horovod, XLA, Open MPI sources), not of an incident
    (
        "collective_hang",
        [
            "[2026-03-02 10:00:00.000: W horovod/common/stall_inspector.cc:105] One or more tensors were "
            "submitted to be reduced, gathered or broadcasted by subset of ranks and are waiting for "
            "remainder of ranks for more than 60 seconds."
        ],
    ),
    (
        "collective_hang",
        [
            "jaxlib.xla_extension.XlaRuntimeError: DEADLINE_EXCEEDED: Barrier timed out. Id: step_9::0.",
            "UNAVAILABLE: The following tasks are unhealthy (stopped sending heartbeats):",
        ],
    ),
    ("node_failure", ["ORTE has lost communication with its daemon located on node: hostname: node07"]),
    ("environment_error", ["ORTE was unable to reliably start one or more daemons."]),
    (
        "rendezvous_failure",
        [
            "ValueError: Error initializing torch.distributed using env:// rendezvous: environment variable MASTER_ADDR expected, but not set"
        ],
    ),
    ("rendezvous_failure", ["RuntimeError: connect() timed out. Original timeout was 1800000 ms."]),
    (
        "rendezvous_failure",
        [
            "[W socket.cpp:601] [c10d] The client socket has timed out after 1800s while trying to connect to (10.0.0.5, 29500)."
        ],
    ),
    ("numerical_divergence", ["{'train_loss': nan, 'epoch': 1.0}"]),
    (
        "numerical_divergence",
        [
            "ValueError: Expected parameter loc (Tensor of shape (64, 8)) of distribution Normal(loc: torch.Size([64, 8])) to satisfy the constraint Real(), but found invalid values:"
        ],
    ),
    ("software_error", ["[rank0]: TypeError: forward() got an unexpected keyword argument 'labels'"]),
    (
        "software_error",
        [
            "RuntimeError: Given groups=1, weight of size [64, 3, 7, 7], expected input[8, 4, 224, 224] to have 3 channels, but got 4 channels instead"
        ],
    ),
    (
        "environment_error",
        ["RuntimeError: Detected that PyTorch and torchvision were compiled with different CUDA versions."],
    ),
    ("environment_error", ["nvcc fatal   : Unsupported gpu architecture 'compute_90'"]),
    ("environment_error", ["RuntimeError: FlashAttention only supports Ampere GPUs or newer."]),
    ("environment_error", ["RuntimeError: operator torchvision::nms does not exist"]),
    ("inference_overload", ["openai.RateLimitError: Error code: 429 - {'error': 'Too many requests'}"]),
    (
        "inference_overload",
        [
            "WARNING 05-09 00:49:33 scheduler.py:1057 Sequence group 12 is preempted by PreemptionMode.RECOMPUTE mode because there is not enough KV cache space."
        ],
    ),
    (
        "storage_io",
        [
            'safetensors_rust.SafetensorError: Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'
        ],
    ),
    (
        "storage_io",
        [
            "OSError: Unable to open file (unable to lock file, errno = 11, error message = 'Resource temporarily unavailable')"
        ],
    ),
    (
        "node_failure",
        ["srun: error: Task launch for StepId=1234.0 failed on node gpu17: Communication connection failure"],
    ),
    (
        "network_fabric",
        [
            "NCCL WARN NET/IB : Got completion from peer 10.1.1.2<40000> with status=12 opcode=0 len=0 vendor err 129 (Recv) localGid ::ffff:10.1.1.1 remoteGid ::ffff:10.1.1.2"
        ],
    ),
    (
        "network_fabric",
        [
            "[E ProcessGroupNCCL.cpp:1414] Process group watchdog thread terminated with exception: NCCL error: remote process exited or there was a network error, NCCL version 2.20.5",
            "NET/IB : Got completion from peer 10.5.0.34<33956> with error 5, opcode 0, len 1, vendor err 244 (Recv)",
        ],
    ),
    ("gpu_hardware_fault", ["Unable to determine the device handle for GPU0000:3B:00.0: Unknown Error"]),
    ("nvlink_error", ["RuntimeError: CUDA error: uncorrectable NVLink error detected during the execution"]),
    ("walltime_exceeded", ["=>> PBS: job killed: walltime 7215 exceeded limit 7200"]),
    ("preemption", ["slurmstepd: error: *** JOB 1234 ON n1 CANCELLED AT 2025-01-01T00:00:00 DUE TO PREEMPTION ***"]),
    (
        "gpu_thermal",
        ["    HW Slowdown                       : Active", "    HW Thermal Slowdown               : Active"],
    ),
    (
        "dataloader_bottleneck",
        [
            "UserWarning: The dataloader, train_dataloader, does not have many workers which may be a bottleneck. Consider increasing the value of the `num_workers` argument`"
        ],
    ),
    # UCX (Open MPI / NCCL's UCX plugin) words the IB retry error differently from verbs
    (
        "network_fabric",
        ["[gpu-12:45678:0]  ib_mlx5_log.c:177  Transport retry count exceeded on mlx5_0:1/IB (synd 0x15 vend 0x81)"],
    ),
    (
        "host_oom",
        [
            "numpy.core._exceptions._ArrayMemoryError: Unable to allocate 42.3 GiB for an array with shape (110000, 103000)"
        ],
    ),
    ("preemption", ["slurmctld: _job_requeue: JobId=1234 state=0x8000 reason=Preempted"]),
    ("inference_overload", ["[2024-09-01 12:00:00 TP0] KV cache pool is full. Retract requests. #retracted_reqs: 12"]),
    ("gpu_thermal", ["Warning: GPU 2 Thermal violations totaling 13.2 seconds."]),
    ("host_oom", ["ray.exceptions.OutOfMemoryError: Task was killed due to the node running low on memory."]),
    ("node_failure", ["ray.exceptions.NodeDiedError: The node with node id: 5f1c2 has been marked dead"]),
    ("node_failure", ["ORTE has lost communication with a remote daemon."]),
    (
        "network_fabric",
        ["[gpu-7:12345:0:12345] ib_mlx5_log.c:171 Remote access error on mlx5_0:1/IB (synd 0x13 vend 0x88)"],
    ),
    ("numerical_divergence", ["FloatingPointError: invalid value (nan) encountered in jit(train_step)"]),
    ("numerical_divergence", ["RuntimeError: probability tensor contains either `inf`, `nan` or element < 0"]),
    ("software_error", ["torch._dynamo.exc.Unsupported: call_function BuiltinVariable(open) [ConstantVariable()] {}"]),
    (
        "rendezvous_failure",
        [
            "RuntimeError: [3] is setting up NCCL communicator and retrieving ncclUniqueId from [0] via c10d key-value store by key '0', but store->get('0') got error: Socket Timeout"
        ],
    ),
    (
        "gpu_memory_error",
        [
            "    Remapped Rows",
            "        Correctable Error                 : 0",
            "        Uncorrectable Error               : 2",
            "        Pending                           : Yes",
        ],
    ),
    # inside a container NVML loses its GPUs when the host re-applies cgroups: an environment problem, not a dead GPU
    ("environment_error", ["$ docker exec -it trainer nvidia-smi", "Failed to initialize NVML: Unknown Error"]),
    ("environment_error", ["nvidia-container-cli: initialization error: nvml error: driver not loaded: unknown."]),
    (
        "environment_error",
        [
            "ValueError: Bfloat16 is only supported on GPUs with compute capability of at least 8.0. Your Tesla V100-SXM2-32GB GPU has compute capability 7.0."
        ],
    ),
    (
        "environment_error",
        ["RuntimeError: Detected that PyTorch and torchvision were compiled with different CUDA major versions."],
    ),
    ("host_oom", ["  exitcode  : -7 (pid: 4412)", "  traceback : Signal 7 (SIGBUS) received by PID 4412"]),
    ("host_oom", ["Epoch 2:  13%|#3        | 260/2000 [05:01<33:35,  1.16s/it]Killed"]),
    ("network_fabric", ["ib0: transmit timeout: latency 10240 msecs"]),
    (
        "inference_overload",
        [
            "INFO 02-01 06:36:05 llm_engine.py:921] Avg prompt throughput: 382.6 tokens/s, Avg generation throughput: 118.5 tokens/s, Running: 35 reqs, Swapped: 0 reqs, Pending: 115 reqs, GPU KV cache usage: 79.0%, CPU KV cache usage: 0.0%"
        ],
    ),
    (
        "dataloader_bottleneck",
        ["I noticed that the GPU utilization is very low and the dataloader has become the bottleneck"],
    ),
    ("dataloader_bottleneck", ["pytorch profiler: 60% of training time is consumed by DataLoader"]),
    # sacct's default State column is 10 wide
    ("host_oom", ["4412345           train        gpu    proj123         16 OUT_OF_ME+    0:125"]),
    ("walltime_exceeded", ["4412346           train        gpu    proj123         16    TIMEOUT      0:0"]),
    ("walltime_exceeded", ["job 123 exceeded hard wallclock time - initiate terminate method"]),
    ("host_oom", ["=>> PBS: job killed: mem 135266304kb exceeded limit 134217728kb"]),
    ("host_oom", ["TERM_MEMLIMIT: job killed after reaching LSF memory usage limit."]),
    ("host_oom", ["    State:          Terminated", "      Reason:       OOMKilled", "      Exit Code:    137"]),
    ("host_oom", ["Warning  Evicted  2m  kubelet  The node was low on resource: memory. Threshold quantity: 100Mi"]),
    ("storage_io", ["Warning  Evicted  2m  kubelet  The node was low on resource: ephemeral-storage."]),
    ("node_failure", ["Warning  NodeNotReady  3m  node-controller  Node is not ready"]),
    ("preemption", ["Instance was preempted."]),
    (
        "gpu_thermal",
        ["clocks_event_reasons.hw_slowdown, clocks_event_reasons.hw_thermal_slowdown", "Not Active, Active"],
    ),
    (
        "environment_error",
        [
            "node1:2231:2300 [0] misc/ibvwrap.cc:278 NCCL WARN Call to ibv_reg_mr_iova2 failed with error Cannot allocate memory",
            "node1:2231:2300 [0] NCCL INFO transport/net_ib.cc:1050 -> 2",
            "RuntimeError: NCCL error in: ProcessGroupNCCL.cpp:1269, unhandled system error, NCCL version 2.18.1",
        ],
    ),
    (
        "host_oom",
        [
            "RuntimeError: [enforce fail at alloc_cpu.cpp:83] err == 0. DefaultCPUAllocator: can't allocate memory: you tried to allocate 34359738368 bytes."
        ],
    ),
    ("host_oom", ["c++: fatal error: Killed signal terminated program cc1plus", "compilation terminated."]),
    ("gpu_oom", ["RuntimeError: CUDA driver error: out of memory"]),
    ("gpu_oom", ["RuntimeError: Triton Error [CUDA]: out of memory"]),
    (
        "gpu_oom",
        [
            "XlaRuntimeError: RESOURCE_EXHAUSTED: Failed to allocate request for 2.00GiB (2147483648B) on device ordinal 0"
        ],
    ),
    ("environment_error", ["RuntimeError: CUDA error: the provided PTX was compiled with an unsupported toolchain."]),
    ("environment_error", ["gpu-3:112:112 [0] NCCL WARN Cuda failure 'invalid device function'"]),
    # mmcv / detectron2 iteration lines: data wait is most of the step time
    (
        "dataloader_bottleneck",
        ["Epoch [1][50/1000]\tlr: 1.000e-03, eta: 9:41:20, time: 1.601, data_time: 1.532, memory: 3000"],
    ),
]


def test_a_fast_input_pipeline_is_not_a_bottleneck() -> None:
    line = "Epoch [1][50/1000]\tlr: 1.000e-03, eta: 9:41:20, time: 1.601, data_time: 0.012, memory: 3000"
    d = diagnose([line])
    assert d.root_cause == "unknown", d.evidence


@pytest.mark.parametrize(("expected", "lines"), CASES, ids=[f"{c}-{i}" for i, (c, _) in enumerate(CASES)])
def test_format(expected: str, lines: list[str]) -> None:
    d = diagnose(lines)
    assert d.root_cause == expected, (d.root_cause, d.evidence)


def test_a_pid_of_429_is_not_rate_limiting() -> None:
    d = SignatureEngine().diagnose(parse_bundle({"logs": [{"line": "worker pid 429 started"}]}))
    assert d.root_cause == "unknown"


def test_a_pasted_nvidia_smi_report_of_a_healthy_gpu_is_not_a_memory_error() -> None:
    report = [
        "==============NVSMI LOG==============",
        "    ECC Errors",
        "        Volatile",
        "            SRAM Correctable              : 0",
        "            DRAM Uncorrectable            : 0",
        "    Retired Pages",
        "        Single Bit ECC                    : 0",
        "        Pending Page Blacklist            : No",
        "    Remapped Rows",
        "        Correctable Error                 : 0",
        "        Uncorrectable Error               : 0",
        "        Pending                           : No",
        "        Remapping Failure Occurred        : No",
        "    Clocks Event Reasons",
        "        HW Slowdown                       : Not Active",
    ]
    d = diagnose(report, source="nvidia-smi")
    assert d.root_cause == "unknown", (d.root_cause, d.evidence)


def test_a_queue_behind_an_idle_inference_engine_is_not_overload() -> None:
    # nothing running, cache empty, requests piling up: the engine is stuck, not saturated
    line = (
        "INFO 09-18 16:11:03 metrics.py:351] Avg prompt throughput: 0.0 tokens/s, Avg generation throughput: 0.0 "
        "tokens/s, Running: 0 reqs, Swapped: 0 reqs, Pending: 22 reqs, GPU KV cache usage: 0.0%, CPU KV cache usage: 0.0%."
    )
    d = diagnose([line], source="vllm")
    assert d.root_cause != "inference_overload", d.evidence


def test_an_sge_job_script_s_resource_requests_are_not_a_fault() -> None:
    script = ["#$ -l h_rt=48:00:00", "#$ -l h_vmem=4G", "#$ -pe smp 8"]
    d = diagnose(script)
    assert d.root_cause == "unknown", d.evidence


# Lines every healthy job prints: naming a variable, a rendezvous that worked, a throttle report with nothing active
BENIGN: list[list[str]] = [
    ["GPU available: True (cuda), used: True", "LOCAL_RANK: 0 - CUDA_VISIBLE_DEVICES: [0,1,2,3]"],
    ["NCCL_DEBUG=INFO NCCL_IB_HCA=mlx5 NCCL_SOCKET_IFNAME=ib0 torchrun --nnodes 4 --nproc_per_node 8 train.py"],
    ["export CUDA_HOME=/usr/local/cuda-12.4", "export LD_LIBRARY_PATH=$CUDA_HOME/lib64:$LD_LIBRARY_PATH"],
    [
        "torch.distributed.elastic.agent.server.api:[default] Rendezvous complete for workers. Result:",
        "  master_addr=gpu-node-1",
        "  master_port=29500",
    ],
    [
        "    Clocks Event Reasons",
        "        HW Slowdown                       : Not Active",
        "        HW Thermal Slowdown               : Not Active",
        "        SW Thermal Slowdown               : Not Active",
    ],
    ["    Clocks Throttle Reasons", "        HW Slowdown                       : Not Active"],
    ["clocks_event_reasons.hw_slowdown, clocks_event_reasons.hw_thermal_slowdown", "Not Active, Not Active"],
    ["PreemptType=preempt/qos", "PreemptMode=REQUEUE"],
    [
        "gpu-b07:980:1265 [0] NCCL INFO NET/Plugin : dlerror=libnccl-net.so: cannot open shared object file: "
        "No such file or directory No plugin found (libnccl-net.so), using internal implementation"
    ],
    ["NCCL WARN NET/Plugin : dlerror=libnccl-net.so: cannot open shared object file: No such file or directory"],
    ["Killed 0 stale processes"],
]


@pytest.mark.parametrize("lines", BENIGN, ids=[f"benign-{i}" for i in range(len(BENIGN))])
def test_healthy_output_names_no_cause(lines: list[str]) -> None:
    d = diagnose(lines)
    assert d.root_cause == "unknown", (d.root_cause, d.evidence)


def test_mechanism_specific_advice_comes_first() -> None:
    lines = ["$ docker exec -it trainer nvidia-smi", "Failed to initialize NVML: Unknown Error"]
    d = diagnose(lines)
    assert d.root_cause == "environment_error"
    assert d.remediation[0].startswith("Restart the container"), d.remediation


def test_every_signature_step_names_a_signature_that_exists() -> None:
    from analyzer.rca.report import SIGNATURE_STEPS
    from analyzer.rca.signatures import SIGNATURES

    full = "Running: 256 reqs, Swapped: 0 reqs, Pending: 731 reqs, GPU KV cache usage: 99.8%"
    # the bundle-level checks name themselves only when they fire: fire each once
    known = {s.name for s in SIGNATURES} | matched([full]) | matched(STALLED) | matched(COLLAPSE)
    known |= matched([], job={"state": "FAILED", "exit_code": "0:15", "time_limit": "00:00:20"})
    assert set(SIGNATURE_STEPS) <= known, set(SIGNATURE_STEPS) - known


def _vllm(running: int, queued: int, gen: float, kv: float) -> str:
    # vLLM's V0 metrics logger (vllm-project/vllm vllm/engine/metrics.py)
    return (
        f"INFO 03-02 10:00:00 metrics.py:351] Avg prompt throughput: 0.0 tokens/s, Avg generation throughput: "
        f"{gen} tokens/s, Running: {running} reqs, Swapped: 0 reqs, Pending: {queued} reqs, GPU KV cache usage: "
        f"{kv}%, CPU KV cache usage: 0.0%."
    )


STALLED = [_vllm(3, 0, 41.0, 2.0), _vllm(0, 9, 3.1, 0.0), _vllm(0, 17, 0.0, 0.0), _vllm(0, 26, 0.0, 0.0)]
COLLAPSE = [f"| WARNING: overflow detected, setting loss scale to: {0.5 / 2**k}" for k in range(1, 9)]


def matched(lines: list[str], source: str = "job", job: dict[str, str] | None = None) -> set[str]:
    from analyzer.rca.findings import all_findings

    data = {"logs": [{"source": source, "line": ln} for ln in lines]} | ({"job": job} if job else {})
    return {f.signature for f in all_findings(parse_bundle(data))}


def test_a_queue_behind_an_engine_that_runs_nothing_is_a_stall_not_an_overload() -> None:
    d = diagnose(STALLED, "vllm")
    assert d.root_cause == "software_error" and "inference-engine-stalled" in matched(STALLED, "vllm"), d
    # SGLang's decode log says the same in its own words
    sglang = [f"[2026-03-02 10:00:0{i}] Decode batch. #running-req: 0, #token: 0, token usage: 0.00, "
              f"gen throughput (token/s): 0.00, #queue-req: {10 + 5 * i}" for i in range(3)]  # fmt: skip
    assert diagnose(sglang, "sglang").root_cause == "software_error"
    # a full server queues too, but it is running and its cache is full
    full = [_vllm(256, 300 + i, 1800.0, 99.1) for i in range(3)]
    assert diagnose(full, "vllm").root_cause == "inference_overload"
    # a queue that drains, or a single report of an idle engine, is no stall
    assert diagnose([_vllm(0, 12, 0.0, 0.0), _vllm(8, 3, 300.0, 20.0)], "vllm").root_cause == "unknown"


def test_a_loss_scale_halved_below_one_is_a_diverging_run_not_the_warm_up() -> None:
    # apex/fairseq/DeepSpeed dynamic loss scalers halve on every overflowing step
    d = diagnose(COLLAPSE)
    assert d.root_cause == "numerical_divergence" and "loss-scale-collapsed" in matched(COLLAPSE), d
    # the first steps of a healthy fp16 run halve from 2^16 a few times and settle far above 1
    warm_up = [
        f"[deepspeed] OVERFLOW! Rank 0 Skipping step. Attempted loss scale: {2**k}, reducing to {2 ** (k - 1)}"
        for k in range(16, 11, -1)
    ]
    assert "loss-scale-collapsed" not in matched(warm_up)


def test_sigterm_under_a_time_limit_is_the_limit_even_when_slurm_says_failed() -> None:
    def job(state: str, code: str, limit: str | None, elapsed: str | None = None) -> Diagnosis:
        j = {"id": "25", "state": state, "exit_code": code, "time_limit": limit, "elapsed": elapsed}
        return SignatureEngine().diagnose(parse_bundle({"job": j}))

    assert job("FAILED", "0:15", "00:00:20").root_cause == "walltime_exceeded"
    assert job("FAILED", "0:15", "01:00:00", "01:00:31").confidence > job("FAILED", "0:15", "01:00:00").confidence
    # ended on SIGTERM long before its limit: someone or something else sent it
    assert job("FAILED", "0:15", "01:00:00", "00:05:00").root_cause != "walltime_exceeded"
    # a cancelled job gets SIGTERM from scancel; no limit known, nothing to compare
    assert job("CANCELLED", "0:15", "00:00:20").root_cause != "walltime_exceeded"
    assert job("FAILED", "0:15", None).root_cause != "walltime_exceeded"


def test_a_hang_logged_at_nccl_debug_info_is_still_a_hang() -> None:
    lines = [
        "gpu-b07:980:1265 [0] NCCL INFO NET/Plugin : dlerror=libnccl-net.so: cannot open shared object file: "
        "No such file or directory No plugin found (libnccl-net.so), using internal implementation",
        "gpu-b07:980:1265 [0] NCCL INFO Using network IB",
        "[rank3]:[E ProcessGroupNCCL.cpp:607] [Rank 3] Watchdog caught collective operation timeout: "
        "WorkNCCL(SeqNum=9123, OpType=ALLREDUCE, Timeout(ms)=1800000) ran for 1800012 milliseconds before timing out.",
    ]
    d = diagnose(lines)
    assert d.root_cause == "collective_hang", (d.root_cause, d.evidence)
