"""Which stored log lines belong to an incident: its nodes' own logs and its jobs' output, not a neighbour job's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from analyzer.evidence.gather import gather_logs
from analyzer.store import Store, log_lines

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
LINES = [
    ("node/node01/kernel", "Out of memory: Killed process 4242 (python3) total-vm:8123456kB"),
    ("job/2", "slurmstepd-node01: error: Detected 1 oom-kill event(s) in StepId=2.batch."),
    ("slurm/2", "JobId=2 JobName=transitnet-train JobState=OUT_OF_MEMORY NodeList=node01"),
    ("job/4", "RuntimeError: ... Timed out waiting 30000ms for send operation to complete"),
    ("job/4/rank1", "[rank1] entering a long host-side computation"),
    ("slurm/4", "JobId=4 JobName=transitnet-train JobState=FAILED NodeList=node01"),
    ("slurmctld", "_job_complete: JobId=4 WEXITSTATUS 1"),
    ("slurmctld", "sched: Allocate JobId=42 NodeList=node03 #CPUs=2 Partition=debug"),
    ("node/node02/kernel", "NVRM: Xid (PCI:0000:3b:00): 79, GPU has fallen off the bus"),
]


def test_a_job_incident_on_a_shared_node_gets_its_own_lines_and_the_node_s(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'a.db'}")
    with store.tx() as c:
        c.execute(
            log_lines.insert(),
            [{"id": f"l{i}", "ts": T0, "source": s, "line": ln} for i, (s, ln) in enumerate(LINES)],
        )
    logs, item = gather_logs(store, ["node01"], ["4"], T0 - timedelta(minutes=1), T0 + timedelta(minutes=1))
    got = {x["source"] for x in logs}
    assert got == {"node/node01/kernel", "job/4", "job/4/rank1", "slurm/4", "slurmctld"}
    assert item.status == "success" and item.series == 5
    # a node-scoped incident sees the node's lines and no job's output
    logs, _ = gather_logs(store, ["node02"], [], T0 - timedelta(minutes=1), T0 + timedelta(minutes=1))
    assert [x["source"] for x in logs] == ["node/node02/kernel"]
    store.close()


def test_a_job_s_nccl_device_map_from_start_up_comes_with_a_later_window(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'b.db'}")
    init = "node01:51:52 [1] NCCL INFO comm 0x1 rank 1 nranks 2 cudaDev 1 nvmlDev 5 busId ab000 commId 0x2 - Init START"
    early = [
        ("job/4/rank1", init),
        ("job/4/rank1", "node01:51:52 [1] NCCL INFO Channel 00/0 : 0[0] -> 1[1] via P2P/CUMEM"),  # not a device map
        ("job/5/rank1", init.replace("nvmlDev 5", "nvmlDev 6")),  # another job's
    ]
    with store.tx() as c:
        c.execute(
            log_lines.insert(),
            [{"id": f"e{i}", "ts": T0 - timedelta(hours=3), "source": s, "line": ln} for i, (s, ln) in enumerate(early)]
            + [{"id": f"l{i}", "ts": T0, "source": s, "line": ln} for i, (s, ln) in enumerate(LINES)],
        )
    logs, item = gather_logs(store, ["node01"], ["4"], T0 - timedelta(minutes=1), T0 + timedelta(minutes=1))
    assert logs[0]["line"] == init and logs[0]["source"] == "job/4/rank1"
    assert sum("NCCL INFO" in x["line"] for x in logs) == 1
    assert item.series == 6
    store.close()


def test_wildcards_in_names_match_only_themselves(tmp_path: Path) -> None:
    """A node called `gpu_q001` or `gpu%` must not pull in `gpuXq001`'s or every gpu node's lines (SQL LIKE)."""
    store = Store(f"sqlite:///{tmp_path / 'w.db'}")
    rows = [
        ("node/gpu_q001/kernel", "mine: gpu_q001"),
        ("node/gpuXq001/kernel", "a neighbour: gpuXq001"),
        ("node/gpu-a001/kernel", "another: gpu-a001"),
        ("job/7_1/rank0", "job 7_1's own line"),
        ("job/7x1/rank0", "job 7x1's line"),
    ]
    with store.tx() as c:
        c.execute(
            log_lines.insert(), [{"id": f"w{i}", "ts": T0, "source": s, "line": ln} for i, (s, ln) in enumerate(rows)]
        )
    win = (T0 - timedelta(minutes=1), T0 + timedelta(minutes=1))
    assert [x["line"] for x in gather_logs(store, ["gpu_q001"], [], *win)[0]] == ["mine: gpu_q001"]
    assert gather_logs(store, ["gpu%"], [], *win)[0] == []
    assert [x["line"] for x in gather_logs(store, [], ["7_1"], *win)[0]] == ["job 7_1's own line"]
    store.close()
