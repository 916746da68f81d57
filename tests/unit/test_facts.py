"""Whole-bundle facts: timeouts against the emitters' defaults, exit signals, job limits; and how render shows them."""

from __future__ import annotations

import pytest

from analyzer.rca.facts import bundle_facts, exit_signal, known_timeouts, timeout_facts, timeouts
from analyzer.rca.render import error_words, render, trend
from hpcmind.contract import JobEvidence, parse_bundle

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("line", "seconds"),
    [
        ("[c10d] waitForInput: socket SocketImpl(fd=7) timed out after 1800000ms", 1800.0),
        ("WorkNCCL(SeqNum=9, OpType=ALLREDUCE, Timeout(ms)=600000) ran for 600412 milliseconds", 600.0),
        ("Timed out initializing process group in store based barrier (world_size=8, timeout=0:30:00)", 1800.0),
        ("RuntimeError: Socket Timeout after 45 s", 45.0),
        ("client: 30 seconds timeout reached", 30.0),
    ],
)
def test_timeouts_are_read_in_the_emitters_formats(line: str, seconds: float) -> None:
    assert timeouts([line])[0] == seconds


def test_a_default_timeout_is_named_and_a_custom_one_is_not() -> None:
    assert "torch.distributed default" in timeout_facts(["timed out after 1800000ms"])[0]
    assert "ProcessGroupNCCL default" in timeout_facts(["Timeout(ms)=600000"])[0]
    custom = timeout_facts(["timed out after 1234 s"])
    assert custom and "no emitter's default" in custom[0]
    assert timeout_facts(["step=4 loss=2.1 step_time=0.5"]) == []


@pytest.mark.parametrize(
    "line",
    [
        "Job has not timed out. Ran 1 minutes out of requested 20 minutes.",  # a launcher's reassurance
        "no timeout: 30 min remaining",
        "timed out; retrying in 60 s",  # the number belongs to the next clause
    ],
)
def test_a_negated_or_unrelated_number_is_no_timeout(line: str) -> None:
    assert timeouts([line]) == []


def test_a_bounded_locked_memory_limit_is_a_fact_and_unlimited_is_not() -> None:
    from analyzer.rca.facts import memlock_facts

    assert "64 kB" in memlock_facts(["max locked memory       (kbytes, -l) 64"])[0]
    ucx = (
        "ibv_create_cq failed: Cannot allocate memory : "
        "Please set max locked memory (ulimit -l) to 'unlimited' (current: 8192 kbytes)"
    )
    assert "8192 kB" in memlock_facts([ucx])[0]
    assert memlock_facts(["max locked memory       (kbytes, -l) unlimited"]) == []


def test_every_default_cites_its_source() -> None:
    rows = known_timeouts()
    assert len({r.seconds for r in rows}) == len(rows) >= 3
    assert all(":" in r.src and "/" in r.src for r in rows)


@pytest.mark.parametrize(
    ("code", "sig"), [("0:15", 15), ("0:9", 9), ("137", 9), ("1:0", None), ("0:0", None), ("2", None), ("x", None)]
)
def test_exit_signal(code: str, sig: int | None) -> None:
    assert exit_signal(code) == sig


def test_job_facts_and_slurm_json_durations() -> None:
    job = JobEvidence(id="25", exit_code="0:15", time_limit={"set": True, "number": 20}, elapsed=1200)
    assert job.time_limit == "00:20:00" and job.elapsed == "00:20:00"
    b = parse_bundle({"job": job.model_dump()})
    facts = bundle_facts(b)
    assert facts == ["job 25 ended on signal 15 (SIGTERM)", "job 25 ran 00:20:00 of its 00:20:00 limit"]
    text = render(b)
    assert "limit=00:20:00" in text and "FACTS job 25 ended on signal 15 (SIGTERM)" in text


def test_zero_counters_are_not_error_words() -> None:
    assert not error_words("| epoch 3 | loss 6.3 | oom 0 | loss_scale 0.5")
    assert not error_words("number of skipped iterations: 0 | number of nan iterations: 0 |")
    assert not error_words("0 errors, 0 failed")
    assert error_words("oom 3 | loss_scale 0.5")
    assert error_words("CUDA error: out of memory")


def test_a_repeated_line_shows_how_its_number_moved() -> None:
    assert trend("setting loss scale to: 0.25", "setting loss scale to: 0.0001220703125") == "0.25 -> 0.0001220703125"
    assert trend("retry 1 of 5 after 2 s", "retry 4 of 5 after 16 s") == ""  # two numbers moved: no single trend
    line = "WARNING: overflow detected, setting loss scale to: {}"
    logs = [{"source": "job", "line": line.format(0.5 / 2**i)} for i in range(1, 6)]
    text = render(parse_bundle({"logs": logs}))
    assert "[x5, 0.25 -> 0.015625]" in text
