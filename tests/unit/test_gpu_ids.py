"""Naming the culprit GPU by the index operators use, from what a logs-only bundle says (real line formats)."""

from __future__ import annotations

from analyzer.bench_rca import Labelled, score
from analyzer.rca import SignatureEngine
from analyzer.rca.gpu_ids import bus_key, gpu_ids, rank_of
from hpcmind.contract import parse_bundle

ENGINE = SignatureEngine()

# NCCL >= 2.18 at NCCL_DEBUG=INFO, one line per rank (format of NVIDIA/nccl#1814)
NCCL_INIT = [
    f"gpu-b07:{980 + r}:{1265 + r} [{r}] NCCL INFO comm 0x55986b8b856{r} rank {8 + r} nranks 16 cudaDev {r} "
    f"nvmlDev {r + 4} busId {bus}000 commId 0x5ae77eb5ea4ec1ee - Init COMPLETE"
    for r, bus in enumerate(["9a", "ab", "ba", "db"])
]
XID_48 = (
    "NVRM: Xid (PCI:0000:ab:00): 48, pid=2777624, An uncorrectable double bit error (DBE) has been detected on GPU "
    "in the framebuffer at physAddr 0x7fdf0de80 partition 5, subpartition 1"
)


def test_bus_ids_in_every_form_compare_equal() -> None:
    assert bus_key("PCI:0000:ab:00") == bus_key("00000000:AB:00.0") == bus_key("ab000") == "ab:00"
    assert bus_key("18000") == "18:00"
    assert bus_key("PCI:0004:01:00") == "01:00"


def test_nccl_init_lines_map_ranks_and_bus_ids_to_nvml_indices() -> None:
    ids = gpu_ids(parse_bundle({"logs": [{"source": "job/7", "line": ln} for ln in NCCL_INIT]}))
    # rank 9 is cudaDev 1 of a job that holds GPUs 4-7: nvmlDev 5
    assert ids.of_rank("7", 9) == ids.of_rank(None, 9) == "5"
    assert ids.of_rank("8", 9) is None  # another job's rank 9
    assert ids.of_bus("PCI:0000:ab:00", "gpu-b07") == "5"
    assert ids.of_bus("PCI:0000:ab:00", "gpu-b99") == "5"  # one index for that address everywhere
    assert ids.of_bus("PCI:0000:3b:00", "gpu-b07") is None


def test_old_nccl_without_nvmldev_maps_ranks_but_not_addresses() -> None:
    # NCCL < 2.18 prints cudaDev only: an ordinal among the visible GPUs, not the device at that bus
    line = "A03-R28:193027:193119 [7] NCCL INFO comm 0x7fdf08000d00 rank 15 nranks 16 cudaDev 7 busId e7000 - Init"
    ids = gpu_ids(parse_bundle({"logs": [{"line": line}]}))
    assert ids.of_rank(None, 15) is None and ids.local_rank_of(None, 15) == "7"
    assert ids.of_bus("PCI:0000:e7:00", "A03-R28") is None


def test_rank_of_reads_per_rank_sources_and_pytorch_prefixes() -> None:
    assert rank_of("job/42/rank3", "x") == 3
    assert rank_of("job/42", "[rank5]: torch.OutOfMemoryError: CUDA out of memory.") == 5
    assert rank_of("job/42", "RuntimeError: CUDA error: out of memory") is None


def test_a_logs_only_xid_is_translated_through_nccl_init_lines() -> None:
    logs = [{"source": "job/31", "line": ln} for ln in NCCL_INIT]
    logs.append({"source": "node/gpu-b07/kernel", "line": XID_48})
    d = ENGINE.diagnose(parse_bundle({"logs": logs}))
    assert d.root_cause == "gpu_memory_error"
    assert (d.culprit.node, d.culprit.gpu) == ("gpu-b07", "5")
    # without the init lines only the address names the GPU, and the diagnosis says so
    bare = ENGINE.diagnose(parse_bundle({"logs": logs[-1:]}))
    assert bare.culprit.gpu == "PCI:0000:ab:00"


TORCHRUN_OOM = [
    ("job/9/rank3", "Traceback (most recent call last):"),
    ("job/9/rank3", "RuntimeError: CUDA error: out of memory"),
    ("job/9", "torch.distributed.elastic.multiprocessing.errors.ChildFailedError:"),
    ("job/9", "  host      : gn007"),
    ("job/9", "  rank      : 3 (local_rank: 1)"),
]


def test_a_failing_rank_names_its_gpu_through_nccl_then_torchrun() -> None:
    logs = [{"source": s, "line": ln} for s, ln in TORCHRUN_OOM]
    d = ENGINE.diagnose(parse_bundle({"logs": logs}))
    assert d.root_cause == "gpu_oom"
    assert (d.culprit.node, d.culprit.gpu) == ("gn007", "1")  # torchrun's local_rank is the rank's CUDA device
    init = "gn007:51:52 [1] NCCL INFO comm 0x1 rank 3 nranks 4 cudaDev 1 nvmlDev 6 busId ba000 commId 0x2 - Init START"
    exact = ENGINE.diagnose(parse_bundle({"logs": [{"source": "job/9", "line": init}, *logs]}))
    assert exact.culprit.gpu == "6"  # NCCL's nvmlDev is the physical index, whatever the job was given


def test_a_rank_does_not_name_a_gpu_for_a_cause_that_is_not_on_one_gpu() -> None:
    logs = [
        {"source": "job/9/rank2", "line": "[rank2]:[E ProcessGroupNCCL.cpp:563] [Rank 2] Watchdog caught collective "
         "operation timeout: WorkNCCL(SeqNum=11480, OpType=ALLREDUCE, Timeout(ms)=600000) ran for 600081 milliseconds "
         "before timing out."},
        {"source": "job/9", "line": "  rank      : 2 (local_rank: 2)"},
    ]  # fmt: skip
    d = ENGINE.diagnose(parse_bundle({"logs": logs}))
    assert d.root_cause == "collective_hang"
    assert d.culprit.gpu is None


def test_the_bench_counts_a_bus_id_as_naming_the_gpu_and_reports_the_index_reading_too() -> None:
    items = [
        Labelled("a", "gpu_memory_error", {}, {"node": "n1", "gpu": "5"}, "logs_only", {"gpu": ["00000000:AB:00.0"]}),
        Labelled("b", "gpu_memory_error", {}, {"node": "n1", "gpu": "2"}, "logs_only", {"gpu": ["00000000:3A:00.0"]}),
        Labelled("c", "gpu_memory_error", {}, {"node": "n1", "gpu": "0"}, "full", {"gpu": ["00000000:18:00.0"]}),
    ]
    preds = [
        ("gpu_memory_error", {"node": "n1", "gpu": "PCI:0000:ab:00"}, 1.0),
        ("gpu_memory_error", {"node": "n1", "gpu": "PCI:0000:ab:00"}, 1.0),  # a different device
        ("gpu_memory_error", {"node": "n1", "gpu": "0"}, 1.0),
    ]
    r = score("t", items, preds)
    assert r["culprit_accuracy"]["gpu"] == 2 / 3
    assert r["culprit_gpu_index_accuracy"] == 1 / 3
    assert r["culprit_all_keys"] == 2 / 3


def test_the_one_job_whose_lines_name_the_failed_node_is_the_culprit_job() -> None:
    xid = "NVRM: Xid (PCI:0000:2a:00): 74, pid=799544, NVLink: fatal error detected on link 4"
    logs = [
        {"source": "node/dgx005/kernel", "line": xid},
        {"source": "job/168361", "line": "torch.distributed.elastic.multiprocessing.errors.ChildFailedError:"},
        {"source": "job/168361", "line": "  host      : dgx005"},
        {"source": "job/168362", "line": "srun: error: dgx006: task 0: Exited with exit code 1"},  # elsewhere
    ]
    d = ENGINE.diagnose(parse_bundle({"logs": logs}))
    assert d.root_cause == "nvlink_error"
    assert (d.culprit.node, d.culprit.job) == ("dgx005", "168361")
    # two jobs on the node: the evidence does not say which one the link took down
    both = [*logs, {"source": "job/168363", "line": "srun: error: dgx005: task 1: Exited with exit code 1"}]
    assert ENGINE.diagnose(parse_bundle({"logs": both})).culprit.job is None


def test_a_driver_message_over_several_lines_names_its_gpu_on_the_first() -> None:
    # nvidia.ko prints "fallen off the bus" as one printk over three NVRM: lines; the address is on the first
    logs = [
        {"source": "node/g12/kernel", "line": "[  912.004211] NVRM: The NVIDIA GPU 0000:3b:00.0"},
        {"source": "node/g12/kernel", "line": "               NVRM: (PCI ID: 10de:20b2) installed in this system has"},
        {
            "source": "node/g12/kernel",
            "line": "               NVRM: fallen off the bus and is not responding to commands.",
        },
    ]
    d = ENGINE.diagnose(parse_bundle({"logs": logs}))
    assert d.root_cause == "gpu_hardware_fault"
    assert d.culprit.gpu is not None and bus_key(d.culprit.gpu) == "3b:00"


def test_nccl_s_device_field_names_the_gpu_of_a_gpu_scoped_root_line() -> None:
    logs = [
        {"source": "job/77", "line": "gpu-a03:4411:4520 [1] NCCL INFO Channel 00 : 1[1b000] -> 2[3d000] via P2P/IPC"},
        {"source": "job/77", "line": "gpu-a03:4412:4412 [2] misc/utils.cc:120 NCCL WARN Cuda failure 'out of memory'"},
    ]
    d = ENGINE.diagnose(parse_bundle({"logs": logs}))
    assert (d.root_cause, d.culprit.gpu, d.culprit.node) == ("gpu_oom", "2", "gpu-a03")
    # a fabric fault on the same prefix is not the GPU's: no device is named for it
    ib = "gpu-a03:4412:4600 [2] NCCL WARN NET/IB : mlx5_1:1 async fatal event: port error"
    d = ENGINE.diagnose(parse_bundle({"logs": [{"source": "job/77", "line": ib}]}))
    assert d.root_cause == "network_fabric" and d.culprit.gpu is None


def test_submitit_names_the_job_it_requeues() -> None:
    logs = [
        {"source": "submitit", "line": "submitit WARNING (2026-03-02 10:00:01,100) - Caught signal SIGUSR2 on "
                                       "cn14: this job is preempted."},
        {"source": "submitit", "line": "submitit INFO (2026-03-02 10:00:01,140) - Requeued job 4410 (2 remaining "
                                       "timeouts)"},
    ]  # fmt: skip
    d = ENGINE.diagnose(parse_bundle({"logs": logs}))
    assert (d.root_cause, d.culprit.node, d.culprit.job) == ("preemption", "cn14", "4410")


def test_a_bus_id_label_is_named_by_the_same_bus_in_another_form() -> None:
    item = Labelled("x", "gpu_hardware_fault", parse_bundle({"logs": [{"line": "x"}]}), {"gpu": "0000:3b:00.0"})
    assert item.names("gpu", "PCI:0000:3b:00") and not item.names("gpu", "PCI:0000:3c:00")
