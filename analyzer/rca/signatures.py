"""Documented log/alert signatures per root cause.

Each row: (name, root cause, weight, regex). Weights encode how decisive a signal is:
  12  names the root cause outright (Xid 79, "DUE TO TIME LIMIT", "No space left on device")
   8  strong, specific symptom
   5  suggestive, seen with other causes too
   2  a hint only
A root signal must outweigh the symptoms it causes (a NCCL watchdog timeout, weight 8, loses
to the InfiniBand completion error, weight 11, that made it time out).
Xid codes are handled by `xid.py`, numeric checks (nvidia-smi temperatures, data-wait ratios,
KV-cache usage) by `log_checks.py`, metric windows by `metric_rules.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Signature:
    name: str
    cause: str
    weight: float
    pattern: re.Pattern[str]


_I = re.IGNORECASE

# fmt: off
_ROWS: list[tuple[str, str, float, str, int]] = [
    # ---- gpu_oom -----------------------------------------------------------------------------------
    ("cuda-oom", "gpu_oom", 12, r"CUDA out of memory|CUDA (?:driver )?error: out of memory|\[CUDA\]: out of memory|CUDA_ERROR_OUT_OF_MEMORY|Cuda failure 'out of memory'", _I),
    ("cublas-not-initialized", "gpu_oom", 5, r"CUBLAS_STATUS_NOT_INITIALIZED|CUDNN_STATUS_NOT_INITIALIZED", 0),
    ("torch-oom-error", "gpu_oom", 11, r"torch\.(?:cuda\.)?OutOfMemoryError|^\s*(?:\[?(?:rank|default)?\d+\]?:\s*)?OutOfMemoryError:", 0),
    ("hip-oom", "gpu_oom", 11, r"HIP out of memory", _I),
    ("cublas-alloc", "gpu_oom", 10, r"CUBLAS_STATUS_ALLOC_FAILED|CUDNN_STATUS_ALLOC_FAILED|cudaErrorMemoryAllocation", 0),
    ("tf-oom", "gpu_oom", 10, r"OOM when allocating tensor|RESOURCE_EXHAUSTED: (?:Out of memory|Failed to allocate)", _I),
    ("tried-to-allocate", "gpu_oom", 8, r"Tried to allocate [\d.]+ ?[GMK]i?B.*GPU", _I),
    ("cuda-malloc-failed", "gpu_oom", 8, r"cudaMalloc(?:Async)? failed|Failed to CUDA calloc|cuMemAlloc failed", _I),
    ("vllm-no-cache-memory", "gpu_oom", 8, r"No available memory for the cache blocks", _I),
    ("vllm-kv-too-small", "gpu_oom", 6, r"larger than the maximum number of tokens that can be stored in KV cache", _I),
    ("gpu-memory-full", "gpu_oom", 5, r"GPU (?:memory|framebuffer) (?:is )?(?:full|exhausted)", _I),
    # ---- host_oom ----------------------------------------------------------------------------------
    ("slurm-oom-kill", "host_oom", 12, r"oom[-_]kill event|out-of-memory handler|OOM Killed", _I),
    ("srun-oom", "host_oom", 11, r"task \d+: Out Of Memory", 0),
    ("kernel-oom-kill", "host_oom", 11, r"Out of memory: Kill(?:ed)? process|Memory cgroup out of memory|invoked oom-killer|oom_reaper", _I),
    ("slurm-mem-limit", "host_oom", 11, r"exceeded memory limit|Exceeded job memory limit|Exceeded step memory limit", _I),
    ("dataloader-killed", "host_oom", 10, r"DataLoader worker \(pid[^)]*\) is killed by signal: Killed", _I),
    ("out-of-shm", "host_oom", 9, r"insufficient shared memory|out of shared memory|raise your shared memory limit|unable to write to file </torch_", _I),
    # sacct cuts the state column at 10 characters: OUT_OF_MEMORY prints as OUT_OF_ME+
    ("state-out-of-memory", "host_oom", 10, r"\bOUT_OF_MEMORY\b|\bOUT_OF_ME\+|Reason=OutOfMemory", 0),
    ("container-oom-killed", "host_oom", 11, r"\bOOMKilled\b|low on resource: memory", 0),
    ("batch-mem-limit", "host_oom", 11, r"PBS: job killed: v?mem \S+ exceeded limit|TERM_MEMLIMIT|exceeded (?:hard|soft) (?:virtual )?memory limit", 0),
    ("bus-error", "host_oom", 5, r"\bBus error\b", 0),
    ("python-memoryerror", "host_oom", 7, r"^\s*(?:\[?(?:rank|default)?\d+\]?:\s*)?MemoryError\b|std::bad_alloc", 0),
    ("ray-memory-monitor", "host_oom", 11, r"node running low on memory|ray\.exceptions\.OutOfMemoryError|exceeds the memory usage threshold", _I),
    ("cpu-allocator", "host_oom", 10, r"DefaultCPUAllocator: (?:can't|not enough memory|could not) allocate", _I),
    ("compiler-killed", "host_oom", 9, r"Killed signal terminated program (?:cc1plus|cc1|ld|cicc|ptxas)", 0),
    ("numpy-alloc", "host_oom", 9, r"_ArrayMemoryError|Unable to allocate [\d.]+ [KMGTP]i?B for an array", 0),
    ("errno-12", "host_oom", 6, r"\[Errno 12\] Cannot allocate memory|Cannot allocate memory \(12\)", _I),
    ("dataloader-bus-error", "host_oom", 6, r"killed by signal: Bus error|Unexpected bus error encountered in worker", _I),
    ("sigbus-exit", "host_oom", 5, r"Signal 7 \(SIGBUS\)|exitcode\s*:?\s*-7\b", _I),
    ("sigkill-exit", "host_oom", 4, r"exitcode\s*:?\s*-9\b|Signal 9 \(SIGKILL\)|exit ?code:?\s*137\b|\bexited with code 137", _I),
    ("bare-killed", "host_oom", 4, r"(?:^\s*(?:\[?(?:rank|default)?\d+\]?:\s*)?(?:/bin/bash: line \d+: +\d+ )?|(?:s/it|it/s)\]\s*)Killed\b(?!\s+\d)", 0),
    ("memory-pressure", "host_oom", 4, r"host memory pressure|memory (?:is )?exhausted on (?:the )?(?:node|host)", _I),
    # ---- gpu_hardware_fault ------------------------------------------------------------------------
    ("fallen-off-bus", "gpu_hardware_fault", 12, r"fallen off the bus|fell off the bus", _I),
    ("gpu-lost", "gpu_hardware_fault", 11, r"NV_ERR_GPU_IS_LOST|GPU is lost|GPU lost from the bus|\bGpuLost\b", _I),
    ("device-handle", "gpu_hardware_fault", 11, r"Unable to determine the device handle for GPU", _I),
    ("rminit-failed", "gpu_hardware_fault", 11, r"RmInitAdapter failed|rm_init_adapter failed", _I),
    ("reset-required", "gpu_hardware_fault", 9, r"NV_ERR_RESET_REQUIRED|GPU requires reset|GPU reset required", _I),
    ("gsp-error", "gpu_hardware_fault", 8, r"\bGSP\b|_kgsp|GspRm", 0),
    ("nvidia-smi-err", "gpu_hardware_fault", 6, r"\bERR!|Unknown Error\s*$", 0),
    ("no-devices-found", "gpu_hardware_fault", 6, r"No devices were found", 0),
    ("unspecified-launch-failure", "gpu_hardware_fault", 6, r"unspecified launch failure|CUDA_ERROR_LAUNCH_FAILED", _I),
    ("cuda-unknown-error", "gpu_hardware_fault", 5, r"CUDA_ERROR_UNKNOWN|cuInit returned error 999|CUDA error: unknown error|cudaErrorUnknown", 0),
    ("gpu-task-hung", "gpu_hardware_fault", 6, r"\btask (?:nvidia|nv_|nv-)[^\s:]*:\d+ blocked for more than \d+ seconds", _I),
    ("pcie-aer", "gpu_hardware_fault", 5, r"PCIe Bus Error|AER: .*Uncorrected|pcieport .* error", _I),
    ("gpu-missing", "gpu_hardware_fault", 9, r"GPU (?:is )?missing|GPU off the bus|GPUFallenOffBus|GpuMissing", _I),
    # ---- gpu_memory_error --------------------------------------------------------------------------
    ("uncorrectable-ecc", "gpu_memory_error", 12, r"uncorrectable ECC error|ECC_UNCORRECTABLE|cudaErrorECCUncorrectable|double bit (?:ECC )?error|\bDBE\b", _I),
    ("row-remap", "gpu_memory_error", 10, r"Row Remapper|row remap(?:ping)? (?:fail|pending)|Failed to remap row", _I),
    # nvidia-smi -q prints "Retired Pages" and "ECC Errors" section headers on healthy GPUs: require an event
    ("retired-pages", "gpu_memory_error", 8, r"retired pages? (?:pending|limit|exhausted)|page retirement (?:fail|limit)|Pending Page Blacklist\s*:\s*Yes", _I),
    ("uncorrectable-memory", "gpu_memory_error", 9, r"UNCORRECTABLE MEMORY ERROR|uncorrectable (?:HBM|DRAM) error", _I),
    ("contained-ecc", "gpu_memory_error", 9, r"\b(?:Contained|Uncontained): .*(?:RST|physAddr)", 0),
    ("ecc-generic", "gpu_memory_error", 5, r"\bECC (?:error|failure)s? (?:was |were |has been )?(?:detected|encountered|occurred|found)", _I),
    # ---- nvlink_error ------------------------------------------------------------------------------
    ("nvlink-fatal", "nvlink_error", 12, r"NVLink: fatal error|NVLink (?:fatal|error detected)|NVLINK_ERROR", _I),
    ("nvlink-generic", "nvlink_error", 7, r"\bNVLink\b.*(?:error|fail|down|inactive)|(?:error|fail).*\bNVLink\b", _I),
    ("nvswitch-sxid", "nvlink_error", 10, r"\bSXid\b|nvidia-nvswitch\d*:", 0),
    ("fabric-manager", "nvlink_error", 8, r"fabric ?manager|nv-fabricmanager|NVSwitch", _I),
    ("system-not-initialized", "nvlink_error", 6, r"system not yet initialized|CUDA_ERROR_SYSTEM_NOT_READY", _I),
    # ---- gpu_thermal -------------------------------------------------------------------------------
    ("hw-slowdown-active", "gpu_thermal", 10, r"(?:HW|SW) (?:Thermal )?Slowdown\s*:\s*Active", _I),
    ("power-brake-active", "gpu_thermal", 8, r"HW Power Brake Slowdown\s*:\s*Active", _I),
    ("thermal-throttle", "gpu_thermal", 9, r"thermal(?:ly)? (?:throttl|slowdown|violations?)(?![^\n]*:\s*Not Active)|THERMAL_VIOLATION|throttled? (?:due to|by) (?:temp|heat)", _I),
    ("overheat", "gpu_thermal", 8, r"overheat|over-temperature|temperature (?:is )?(?:above|exceeds|too high|critical)|GPU (?:is )?too hot", _I),
    ("throttle-generic", "gpu_thermal", 5, r"\bthrottl(?!e[ _]reasons)(?![^\n]*:\s*Not Active)", _I),
    ("straggler", "gpu_thermal", 4, r"\bstraggler\b|slow(?:est)? rank", _I),
    ("clock-reasons", "gpu_thermal", 3, r"Clocks? (?:Throttle|Event) Reasons|clocks_(?:throttle|event)_reasons", _I),
    # ---- network_fabric ----------------------------------------------------------------------------
    ("ib-completion-error", "network_fabric", 11, r"Got completion from peer .* (?:error|status=) ?\d+", _I),
    ("ib-retry-exceeded", "network_fabric", 11, r"IBV_WC_RETRY_EXC_ERR|transport retry count(?:er)? exceeded|RNR_RETRY_EXC|IBV_WC_RNR", _I),
    ("ucx-ib-error", "network_fabric", 9, r"(?:Remote access|Remote operation|Remote invalid request|Local protection|Local QP operation) error on mlx\d", _I),
    ("ucx-unreachable", "network_fabric", 5, r"ucp_ep_create\(.*\) failed: Destination is unreachable|UCX\s+ERROR.*(?:unreachable|Endpoint timeout)", _I),
    ("ibv-wc-error", "network_fabric", 8, r"IBV_WC_\w+_ERR|work completion error", _I),
    ("nccl-net-ib", "network_fabric", 8, r"NET/IB\b.*(?:error|fail|timeout|async event)", _I),
    ("mlx5-link-down", "network_fabric", 10, r"mlx5\w*.*(?:Link down|link_down|port .*down)", _I),
    ("cable-event", "network_fabric", 9, r"Port module event.*(?:Cable (?:unplugged|error)|error)", _I),
    ("ib-port-down", "network_fabric", 9, r"(?:IB|InfiniBand|HCA) port .*(?:down|DOWN|error)|port state:? *(?:DOWN|1: DOWN)|PORT_DOWN|LinkDown", _I),
    ("ib-counters", "network_fabric", 7, r"link_downed|symbol_error|link_error_recovery|port_rcv_errors", _I),
    ("nic-health", "network_fabric", 8, r"device's health compromised|NETDEV WATCHDOG|local catastrophic error", _I),
    ("ibv-failure", "network_fabric", 5, r"\bibv_\w+ failed|ibv_poll_cq|ibverbs", _I),
    ("nccl-net-socket", "network_fabric", 5, r"NET/Socket\b.*(?:error|fail|closed)", _I),
    ("socket-peer-closed", "network_fabric", 4, r"socketProgress: Connection closed by remote peer|Connection reset by peer", _I),
    ("nccl-remote-error", "network_fabric", 3, r"remote process exited or there was a network error|ncclRemoteError|network error", _I),
    ("nccl-system-error", "network_fabric", 3, r"unhandled system error|ncclSystemError", _I),
    ("infiniband-word", "network_fabric", 3, r"\bInfiniBand\b|\bRoCE\b|\bIB link\b", _I),
    ("ipoib-tx-timeout", "network_fabric", 8, r"\bib\d+: transmit timeout", 0),
    ("link-flap", "network_fabric", 6, r"link (?:flap|down)|\bport (?:flap|down)", _I),
    # ---- collective_hang ---------------------------------------------------------------------------
    ("nccl-watchdog-timeout", "collective_hang", 8, r"Watchdog caught collective operation timeout|collective operation timeout", _I),
    ("collective-mismatch", "collective_hang", 10, r"Detected mismatch between collectives|mismatch between collectives", _I),
    ("worknccl-timeout", "collective_hang", 7, r"WorkNCCL\(.*Timeout|ran for \d+ milliseconds before timing out", _I),
    ("nccl-work-timeout", "collective_hang", 7, r"Timeout at NCCL work|NCCL (?:timeout|timed out)", _I),
    ("watchdog-stuck", "collective_hang", 7, r"watchdog got stuck|heartbeat monitor", _I),
    ("monitored-barrier", "collective_hang", 8, r"monitoredBarrier|failed to pass monitoredBarrier", 0),
    ("watchdog-terminated", "collective_hang", 4, r"watchdog thread terminated with exception", _I),
    ("nccl-ops-failed", "collective_hang", 5, r"Some NCCL operations have failed or timed out|NCCL communicator was aborted", _I),
    ("gloo-timeout", "collective_hang", 6, r"Timed out waiting \d+ms for (?:send|recv) operation", _I),
    ("gloo-pair-timeout", "collective_hang", 8, r"Application timeout caused pair closure", 0),
    ("collective-hang-words", "collective_hang", 5, r"collective (?:hang|hung|stuck)|training (?:is )?(?:hang|hung|stuck|frozen)|all GPUs? (?:of .* )?(?:idle|at 0)|job (?:hang|hung|stuck)|\bhangs? (?:at|in|during|forever)|(?:stuck|hangs?|hanging) (?:at|in) (?:all_?reduce|barrier|all_?gather|broadcast)", _I),
    ("dist-backend-error", "collective_hang", 3, r"DistBackendError|ProcessGroupNCCL", 0),
    # Horovod's stall inspector and the XLA/JAX coordination service: ranks that never reached the same collective
    ("horovod-stall", "collective_hang", 10, r"submitted to be reduced, gathered or broadcast(?:ed)? by subset of ranks|is stalled for longer than \d+ seconds\. Will shutdown", 0),
    ("xla-barrier-timeout", "collective_hang", 8, r"Barrier timed out\. Id:", 0),
    ("flight-recorder", "collective_hang", 2, r"FlightRecorder|TORCH_NCCL_TRACE_BUFFER_SIZE", 0),
    # ---- rendezvous_failure ------------------------------------------------------------------------
    ("socket-failed-listen", "rendezvous_failure", 11, r"server socket has failed to (?:listen|bind)|Address already in use|errno: 98\b", _I),
    ("store-barrier-timeout", "rendezvous_failure", 10, r"Timed out initializing process group in store based barrier|store based barrier", _I),
    ("nccl-uniqueid-store", "rendezvous_failure", 9, r"retrieving ncclUniqueId from \[\d+\] via c10d key-value store", _I),
    ("dist-store-error", "rendezvous_failure", 9, r"DistStoreError|waiting for clients\.? \d+/\d+ clients joined", _I),
    ("rendezvous-error", "rendezvous_failure", 10, r"Rendezvous(?:Timeout|Connection|Closed)?Error|rendezvous (?:timed out|failed)", _I),
    ("client-socket-connect", "rendezvous_failure", 9, r"client socket has (?:failed to connect|timed out)", _I),
    ("dist-init-error", "rendezvous_failure", 8, r"Error initializing torch\.distributed|connect\(\) timed out\. Original timeout", _I),
    ("dist-network-error", "rendezvous_failure", 8, r"DistNetworkError", 0),
    ("tcpstore", "rendezvous_failure", 6, r"TCPStore|recvValueWithTimeout|Failed to recv, got 0 bytes", 0),
    ("init-pg-failed", "rendezvous_failure", 6, r"init_process_group.*(?:timed? ?out|fail)", _I),
    ("master-addr", "rendezvous_failure", 2, r"MASTER_ADDR|MASTER_PORT", _I),
    ("c10d", "rendezvous_failure", 2, r"\[c10d\]|\bc10d\b", _I),
    # ---- storage_io --------------------------------------------------------------------------------
    ("enospc", "storage_io", 11, r"No space left on device|\[Errno 28\]|ENOSPC", _I),
    ("quota", "storage_io", 11, r"Disk quota exceeded|\[Errno 122\]|EDQUOT|quota exceeded", _I),
    ("lustre-error", "storage_io", 9, r"LustreError|Lustre: .*(?:lost|evicted|timed out|slow reply)", 0),
    ("nfs-not-responding", "storage_io", 9, r"nfs: server .* not responding", _I),
    # a task stuck in D state is an I/O stall, unless it is the NVIDIA driver's own (a wedged GPU)
    ("hung-task", "storage_io", 9, r"\btask (?!nvidia|nv_|nv-|dcgm)[^\s:]+:\d+ blocked for more than \d+ seconds", _I),
    ("hung-task-footer", "storage_io", 2, r"hung_task_timeout_secs", _I),
    ("eio", "storage_io", 8, r"Input/output error|\[Errno 5\]|\bEIO\b", _I),
    ("evicted-disk", "storage_io", 10, r"low on resource: (?:ephemeral-storage|nodefs|imagefs)|DiskPressure", 0),
    ("file-lock", "storage_io", 5, r"unable to lock file", _I),
    ("stale-handle", "storage_io", 8, r"Stale file handle|Read-only file system|\[Errno 30\]", _I),
    ("torch-save-failed", "storage_io", 9, r"PytorchStreamWriter failed writing file|file write failed|unexpected pos \d+ vs", _I),
    ("fs-errors", "storage_io", 7, r"EXT4-fs error|XFS .*(?:error|shutdown)|blk_update_request: I/O error|\bI/O error\b", _I),
    ("parallel-fs", "storage_io", 4, r"\bGPFS\b|mmfs|BeeGFS|\[(?:lustre|nfs|nfsv4|ptlrpc|osc|mdc)\]|\bWEKA\b|filesystem (?:stall|slow|hang|full|outage)", _I),
    ("slow-checkpoint", "storage_io", 4, r"checkpoint (?:save|write)s? (?:is |are )?(?:very )?slow|iowait", _I),
    # ---- dataloader_bottleneck ---------------------------------------------------------------------
    ("lightning-few-workers", "dataloader_bottleneck", 10, r"does not have many workers which may be a bottleneck", _I),
    ("data-bound", "dataloader_bottleneck", 7, r"input[- ]?(?:pipeline )?(?:bound|starved)|data ?loader (?:is |has become |becomes )?(?:the )?bottleneck|(?:time|\d+ ?%)[^.\n]{0,30}(?:spent|consumed) (?:by|in|on) (?:the )?(?:data ?loader|data loading)|(?:waiting|starved) (?:for|of) (?:input )?data|GPU(?:s)? (?:are |is )?starved|data[- ]loading (?:is )?slow", _I),
    ("low-gpu-util", "dataloader_bottleneck", 4, r"\blow GPU[- ]util|GPU[- ]util(?:i[sz]ation)?(?: rate)? (?:is |stays |remains )?(?:very |quite |extremely )?low", _I),
    ("dataloader-words", "dataloader_bottleneck", 3, r"data ?loader|num_workers|prefetch", _I),
    # ---- numerical_divergence ----------------------------------------------------------------------
    ("loss-nan", "numerical_divergence", 11, '(?:\\b|_)loss\\b[^\\n]{0,30}?[=:]?\\s*[\'\\"]?(?:nan|inf|-inf)\\b|\\b(?:nan|inf) loss\\b|loss (?:is|became|became|went) (?:nan|inf)', _I),
    ("loss-scale-minimum", "numerical_divergence", 11, r"loss scale already at minimum|Loss scale reached minimum|minimum loss scale", _I),
    ("found-nan", "numerical_divergence", 9, r"found NaN|NaN or Inf found|returned nan values|non-finite|invalid value \(nan\) encountered|probability tensor contains either `inf`, `nan`|Detected (?:NaN|Inf|nan|inf)\b|grad[_ ]norm[^\n]{0,12}\b(?:nan|inf)\b", _I),
    ("fp16-overflow", "numerical_divergence", 7, r"OVERFLOW! Rank \d+ Skipping step|Gradient overflow\.\s+Skipping step|Overflow detected\. Skipping step", _I),
    ("divergence-words", "numerical_divergence", 6, r"\bdiverg(?:ed|ence|ing)\b|loss spike|exploding gradient", _I),
    ("found-invalid-values", "numerical_divergence", 7, r"but found invalid values", _I),
    ("invalid-values-nan", "numerical_divergence", 6, r"found invalid values:? tensor\(\[\[?nan", _I),
    # ---- software_error ----------------------------------------------------------------------------
    ("channel-mismatch", "software_error", 7, r"expected input(?:\[[^\]]*\])? to have \d+ channels, but got", _I),
    ("shape-mismatch", "software_error", 8, r"size mismatch|shape mismatch|shapes cannot be multiplied|must match the size of tensor|Expected all tensors to be on the same device|Error\(s\) in loading state_dict", _I),
    ("device-assert", "software_error", 8, r"device-side assert triggered|Assertion `.*` failed", 0),
    ("python-exception", "software_error", 4, r"^\s*(?:\[?(?:rank|default)?\d+\]?:\s*)?(?:[\w.]+\.)?(?:KeyError|TypeError|ValueError|AttributeError|IndexError|AssertionError|NameError|ZeroDivisionError|NotImplementedError|SyntaxError|UnboundLocalError|FileNotFoundError|RecursionError|IsADirectoryError|JSONDecodeError|UnicodeDecodeError)\b", 0),
    ("autograd-ddp-misuse", "software_error", 7, r"Expected to have finished reduction in the prior iteration|Expected to mark a variable ready only once|does not require grad and does not have a grad_fn|needed for gradient computation has been modified by an inplace operation|Trying to backward through the graph a second time", _I),
    ("illegal-memory-access", "software_error", 5, r"illegal memory access|CUDA_ERROR_ILLEGAL_ADDRESS|misaligned address|illegal instruction was encountered", _I),
    ("index-out-of-range", "software_error", 5, r"index out of (?:range|bounds)|out of bounds for dimension", _I),
    ("segfault", "software_error", 4, r"Segmentation fault|SIGSEGV|signal 11\b", _I),
    ("torch-compile-error", "software_error", 6, r"torch\._(?:dynamo|inductor)\.exc\.\w+|BackendCompilerFailed|InductorError", 0),
    ("unrecognized-args", "software_error", 6, r"unrecognized arguments|unexpected keyword argument", _I),
    ("traceback", "software_error", 1, r"Traceback \(most recent call last\)", 0),
    # ---- environment_error -------------------------------------------------------------------------
    ("driver-insufficient", "environment_error", 12, r"CUDA driver version is insufficient|NVIDIA driver on your system is too old|Driver/library version mismatch|cudaErrorInsufficientDriver|NVRM: API mismatch", _I),
    ("no-kernel-image", "environment_error", 11, r"no kernel image is available|not compatible with the current PyTorch installation|mismatches the version that was used to compile PyTorch", _I),
    # kernels built for another GPU architecture, or PTX newer than the driver can JIT
    ("wrong-arch-build", "environment_error", 8, r"invalid device function|PTX was compiled with an unsupported toolchain|CUDA_ERROR_UNSUPPORTED_PTX_VERSION", _I),
    ("toolchain-mismatch", "environment_error", 9, r"compiled with different CUDA (?:major )?versions|Unsupported gpu architecture|(?:only )?supported on GPUs with compute capability|requires? (?:a )?GPUs? with compute capability|only supports (?:Ampere|Hopper|Volta|Turing) GPUs|operator \S+ does not exist|cuDNN version (?:incompatib|mismatch)", _I),
    ("missing-library", "environment_error", 10, r"(?<!libnccl-net\.so: )(?<!libnccl-tuner\.so: )(?<!libnccl-profiler\.so: )cannot open shared object file|undefined symbol:|version `GLIBC", _I),
    ("no-module", "environment_error", 9, r"ModuleNotFoundError|No module named|ImportError", 0),
    ("no-cuda-device", "environment_error", 10, r"no CUDA-capable device is detected|No CUDA GPUs are available|Found no NVIDIA driver|Torch not compiled with CUDA enabled|couldn't communicate with the NVIDIA driver|CUDA driver initialization failed|cudaErrorNoDevice", _I),
    # in a container NVML loses the GPUs when the host re-applies cgroups (systemd daemon-reload); the GPU is fine
    ("nvml-init-failed", "environment_error", 10, r"Failed to initialize NVML: (?:Unknown Error|Insufficient Permissions|Driver Not Loaded|GPU access blocked)|nvidia-container-cli: .*(?:initialization error|driver not loaded|nvml error)", _I),
    ("invalid-device-ordinal", "environment_error", 8, r"invalid device ordinal", _I),
    # naming a variable is not an error (every launcher prints its environment): a hint, below MIN_SCORE alone
    ("env-var-hint", "environment_error", 2, r"CUDA_VISIBLE_DEVICES|CUDA_HOME|LD_LIBRARY_PATH|NCCL_SOCKET_IFNAME", 0),
    ("cuda-init-warning", "environment_error", 6, r"CUDA initialization:|CUDA unknown error - this may be due to an incorrectly set up environment", _I),
    ("busy-unavailable", "environment_error", 4, r"CUDA-capable device\(s\) is/are busy or unavailable", _I),
    ("command-not-found", "environment_error", 7, r"command not found|execve\(\): .*No such file|exec format error|Illegal instruction", _I),
    ("nccl-env", "environment_error", 7, r"Bootstrap : no socket interface found|NCCL_SOCKET_IFNAME set to \S+ but|no matching interface|Error while creating shared memory segment|failed to extend /dev/shm|NCCL version mismatch", _I),
    # verbs can't pin memory: the locked-memory limit (ulimit -l) of the container or login, not the fabric
    ("rdma-memlock", "environment_error", 9, r"ibv_(?:reg_mr\w*|create_cq|create_qp)\(?\)? failed(?: with error|:)? *Cannot allocate memory|Failed to register memory: Cannot allocate memory", _I),
    ("mpi-daemon-start", "environment_error", 8, r"ORTE was unable to reliably start one or more daemons|(?:ORTE|PRTE) daemon has unexpectedly failed after launch", 0),
    ("cuda-home", "environment_error", 6, r"CUDA_HOME (?:environment variable )?is not set|CUDA_HOME does not exist|nvcc: not found|No CUDA runtime is found", _I),
    # ---- walltime_exceeded -------------------------------------------------------------------------
    ("slurm-time-limit", "walltime_exceeded", 13, r"DUE TO TIME LIMIT", 0),
    ("state-timeout", "walltime_exceeded", 11, r"(?:Job)?State=TIMEOUT|\bTIMEOUT\b.*\b(?:job|Job|JOB)\b|Reason=TimeLimit", 0),
    ("sacct-timeout", "walltime_exceeded", 11, r"^\s*\d+[\w.+]*\s.*\sTIMEOUT\s+\d+:\d+\s*$", 0),
    ("submitit-timed-out", "walltime_exceeded", 10, r"this job is timed-out", 0),
    ("sge-wallclock", "walltime_exceeded", 11, r"exceeded (?:hard|soft) wallclock time", _I),
    ("walltime-words", "walltime_exceeded", 9, r"walltime (?:\d+ )?exceeded|exceeded (?:its |the )?(?:time|wall ?time) limit|TERM_RUNLIMIT|time limit (?:reached|exceeded)", _I),
    ("time-limit-hint", "walltime_exceeded", 3, r"\btime ?limit\b|\bwall ?time\b", _I),
    # ---- node_failure ------------------------------------------------------------------------------
    ("slurm-node-failure", "node_failure", 13, r"DUE TO NODE FAILURE|Node failure on|NODE_FAIL|Reason=NodeFail", _I),
    ("node-rebooted", "node_failure", 11, r"Node unexpectedly rebooted|unexpectedly rebooted", _I),
    ("kernel-panic", "node_failure", 11, r"Kernel panic|kernel BUG at|Machine Check Exception|\bmce: \[Hardware Error\]", _I),
    ("node-not-responding", "node_failure", 8, r"Nodes? \S+ not responding|slurmd not responding|Reason=Not responding|not responding, setting DOWN|Killing JobId=\d+ on failed node", _I),
    ("node-down", "node_failure", 7, r"\bnode (?:is )?down\b|NodeDown|node unreachable|host (?:is )?down|lost contact", _I),
    ("mpi-lost-daemon", "node_failure", 9, r"(?:ORTE|PRTE|PRRTE) has lost communication with (?:(?:a )?remote daemon|its daemon located on node)", _I),
    ("ray-node-died", "node_failure", 10, r"NodeDiedError|marked dead because the detector has missed too many heartbeats", _I),
    # a peer stopped heartbeating (XLA/JAX coordination service): a symptom of whatever killed it, weak alone
    ("task-heartbeat-lost", "node_failure", 5, r"heartbeat timeout\. This indicates that the remote task has failed|stopped sending heartbeats\)|coordinator detected missing heartbeats", 0),
    ("node-comm-failure", "node_failure", 6, r"Communication connection failure|Task launch for \S+ failed on node", _I),
    ("kill-task-failed", "node_failure", 5, r"Kill task failed|STEPD TERMINATED", _I),
    ("k8s-node-not-ready", "node_failure", 9, r"\bNodeNotReady\b|node\.kubernetes\.io/(?:unreachable|not-ready)|Node is not ready", 0),
    ("boot-fail", "node_failure", 8, r"BOOT_FAIL|ResumeTimeout", 0),
    # ---- preemption --------------------------------------------------------------------------------
    ("slurm-preemption", "preemption", 13, r"DUE TO PREEMPTION|JobState=PREEMPTED|\bPREEMPTED\b", 0),
    ("slurmctld-preempted", "preemption", 11, r"\breason=Preempted\b|\bPreempting JobId=|preempted JobId=\d+", _I),
    ("job-requeue", "preemption", 9, r"DUE TO JOB REQUEUE|job (?:was )?requeued|requeued (?:by|due)", _I),
    ("preempt-words", "preemption", 6, r"\bjob\b.*\bpreempt|preempted by (?:a )?higher|preemption notice|spot (?:instance )?(?:interruption|preempt)", _I),
    ("cloud-preempted", "preemption", 11, r"instance (?:was|has been) preempted|compute\.instances\.preempted|preemptible instance .*(?:stopped|terminated)", _I),
    ("preempt-config", "preemption", 2, r"Preempt(?:Type|Mode)\s*=", 0),
    # ---- inference_overload ------------------------------------------------------------------------
    ("vllm-kv-preempt", "inference_overload", 11, r"preempted by PreemptionMode|not enough KV cache space|total_cumulative_preemption_cnt", _I),
    ("overloaded", "inference_overload", 10, r"Model is overloaded|OverloadedError|server (?:is )?overloaded|engine (?:is )?overloaded", _I),
    ("too-many-requests", "inference_overload", 7, r"Too Many Requests|(?:HTTP/1\.[01]\"? |status(?: code)?:? |Error code: )429\b|rate limit(?:ed| exceeded)|queue (?:is )?full|Exceeds maximum queue size|maximum pending requests exceeded", _I),
    ("sglang-retract", "inference_overload", 10, r"KV cache pool is full|Retract requests|#retracted_reqs", _I),
    ("kv-cache-saturated", "inference_overload", 8, r"KV[- ]?cache (?:is )?(?:full|exhausted|saturated)|kv_cache_usage_perc|gpu_cache_usage_perc", _I),
    ("vllm-waiting", "inference_overload", 6, r"num_requests_waiting|requests? (?:queue|queueing) (?:growing|backlog)|time[- ]to[- ]first[- ]token|\bTTFT\b", _I),
    ("kv-cache-words", "inference_overload", 2, r"KV[- ]?cache", _I),
]
# fmt: on

SIGNATURES: tuple[Signature, ...] = tuple(
    Signature(name, cause, float(weight), re.compile(rx, flags | re.MULTILINE))
    for name, cause, weight, rx, flags in _ROWS
)
