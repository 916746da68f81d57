"""One simulator scenario per root cause (tests/scenarios/<id>/): the root signal and its cascade appear in the
run's metrics and logs, and the diagnosis of the evidence around the onset matches the ground truth."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pytest

from analyzer.rca import SignatureEngine
from analyzer.training.run_bundles import Run, bundle_for_truth
from hpcmind.contract import parse_bundle
from hpcmind.taxonomy import root_cause_ids
from simulator.engine import Simulation
from simulator.output import RunWriter
from simulator.scenario import load_scenario

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
IDS = sorted(p.name for p in SCENARIOS.iterdir() if p.is_dir())


def test_every_root_cause_has_a_scenario() -> None:
    assert sorted(root_cause_ids()) == IDS


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    out = {}
    for cid in IDS:
        sc = load_scenario(SCENARIOS / cid / "scenario.yaml")
        sim = Simulation(sc)
        d = tmp_path_factory.mktemp(cid)
        with RunWriter(sim, d) as w:
            sim.run(sc.duration or 0, on_tick=w.tick)
        out[cid] = Run.load(d)
    return out


@pytest.mark.parametrize("cid", IDS)
def test_root_signal_and_cascade(cid: str, runs: dict[str, Run]) -> None:
    exp = json.loads((SCENARIOS / cid / "expected.json").read_text())
    run = runs[cid]
    assert [t["root_cause"] for t in run.truth] == [cid]
    truth = run.truth[0]
    node, job = truth["culprit"].get("node"), truth["culprit"].get("job")
    mine = run.logs.filter(
        pl.col("source").str.starts_with(f"node/{node}/")
        | pl.col("source").str.starts_with(f"job/{job}")
        | (pl.col("source") == "slurmctld")
    )
    lines = mine["line"].to_list()
    for rx in exp["logs"]:
        assert any(re.search(rx, ln) for ln in lines), f"no log line matches {rx!r}"
    names = set(run.metrics["name"].unique().to_list())
    for m in exp["metrics"]:
        assert m in names, f"metric {m} missing"
    if "job_state" in exp:
        info = run.metrics.filter(
            (pl.col("name") == "hpcmind_slurm_job_info")
            & pl.col("labels").str.contains(f'"job_id":"{job}"', literal=True)
        )
        states = {json.loads(lb)["state"] for lb in info["labels"].unique().to_list()}
        assert states & set(exp["job_state"].split("|")), f"job {job} states {states}"
    if exp.get("drained"):
        assert any(f"node {node} state set to DRAINING" in ln for ln in lines)


@pytest.mark.parametrize("cid", IDS)
def test_diagnosis_matches_ground_truth(cid: str, runs: dict[str, Run]) -> None:
    truth = runs[cid].truth[0]
    d = SignatureEngine().diagnose(parse_bundle(bundle_for_truth(runs[cid], truth)))
    assert d.root_cause == cid, (d.root_cause, d.evidence[:3])
    got = d.culprit.model_dump()
    for key, value in truth["culprit"].items():
        assert got[key] == value, f"culprit {key}: expected {value}, got {got[key]}"
