"""The actions breaker and modes over a cluster view (pure; the real Slurm runs in tests/integration)."""

from __future__ import annotations

from analyzer.actions.policy import Limits, Node, Verdict, check, initial_state, reason_text
from analyzer.actions.service import plans
from hpcmind.taxonomy import root_cause_ids


def cluster(n: int, out: int = 0, partitions: tuple[str, ...] = ("gpu",)) -> dict[str, Node]:
    return {
        f"g{i:02d}": Node(f"g{i:02d}", frozenset({"IDLE", "DRAIN"} if i < out else {"MIXED"}), partitions,
                          "hpcmind incident 1: x" if i < out else "")
        for i in range(n)
    }  # fmt: skip


def test_a_drain_is_allowed_within_the_share_and_refused_past_it() -> None:
    lim = Limits(max_drain_share=0.10, max_drains=5)
    assert check("drain", "g05", cluster(20), 0, lim) == Verdict(True, "drain g05")
    assert check("drain", "g05", cluster(20, out=1), 0, lim).allowed  # 2 of 20 = 10 %
    v = check("drain", "g05", cluster(20, out=2), 0, lim)
    assert not v.allowed and v.why == "breaker: 3 of 20 nodes would be out of service (at most 10%)"


def test_the_window_count_and_the_last_node_of_a_partition() -> None:
    v = check("drain", "g05", cluster(20), 2, Limits(max_drains=2))
    assert not v.allowed and "2 drains already in the window" in v.why
    nodes = {**cluster(20), "solo": Node("solo", frozenset({"IDLE"}), ("gpu", "debug"))}
    v = check("drain", "solo", nodes, 0, Limits())
    assert v == Verdict(False, "breaker: solo is the last available node of partition debug")
    assert check("drain", "solo", nodes, 0, Limits(keep_last_node=False)).allowed


def test_resume_only_what_hpcmind_drained_and_nothing_unknown() -> None:
    nodes = cluster(4, out=1)
    assert check("resume", "g00", nodes, 0, Limits()).allowed
    assert not check("resume", "g01", nodes, 0, Limits()).allowed  # not drained
    nodes["g02"] = Node("g02", frozenset({"IDLE", "DRAIN"}), ("gpu",), "bad fan (bob)")
    assert "drained by someone else (bad fan (bob))" in check("resume", "g02", nodes, 0, Limits()).why
    assert check("drain", "nope", nodes, 0, Limits()) == Verdict(False, "Slurm knows no node nope")
    assert "already out of service" in check("drain", "g00", nodes, 0, Limits(max_drain_share=1)).why


def test_modes_and_reasons() -> None:
    ok, no = Verdict(True, "x"), Verdict(False, "y")
    assert [initial_state(m, ok) for m in ("dry-run", "approve", "auto")] == ["dry_run", "awaiting_approval", "running"]
    assert initial_state("auto", no) == "refused"
    assert reason_text(12, "gpu_hardware_fault", "GPU 3") == "hpcmind incident 12: gpu_hardware_fault GPU 3"
    assert len(reason_text(1, "x", "y" * 900)) == 250


def test_every_plan_names_a_known_cause_and_cites_its_source() -> None:
    p = plans()
    assert set(p) <= set(root_cause_ids()) and "gpu_hardware_fault" in p
    assert "software_error" not in p and "gpu_oom" not in p  # the job's own faults leave the node alone
