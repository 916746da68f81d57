"""Fleet memory on simulated runs (tests/fleet/*.yaml), scored against the simulator's ground truth: three jobs that
hit Xid 13 on one GPU end in a hardware re-attribution; the same three Xids on three GPUs do not."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from analyzer.fleet.history import Conclusion, Event, apply, evaluate
from analyzer.fleet.store import xids_of
from analyzer.rca import SignatureEngine
from analyzer.training.run_bundles import Run, bundle_for_truth
from hpcmind.contract import parse_bundle
from simulator.engine import Simulation
from simulator.output import RunWriter
from simulator.scenario import load_scenario

FLEET = Path(__file__).resolve().parents[1] / "fleet"


def replay(name: str, tmp: Path) -> list[tuple[dict[str, Any], str, Any, list[Conclusion]]]:
    """Each ground-truth incident in order: diagnosed from its bundle, then read with the unit's history."""
    sc = load_scenario(FLEET / f"{name}.yaml")
    sim = Simulation(sc)
    with RunWriter(sim, tmp) as w:
        sim.run(sc.duration or 0, on_tick=w.tick)
    run, engine = Run.load(tmp), SignatureEngine()
    past: list[Event] = []
    out = []
    for i, truth in enumerate(sorted(run.truth, key=lambda t: t["onset"]), 1):
        bundle = parse_bundle(bundle_for_truth(run, truth))
        d = engine.diagnose(bundle)
        at = datetime.fromisoformat(truth["onset"].replace("Z", "+00:00"))
        ev = Event(i, at, d.root_cause, d.culprit.node, d.culprit.gpu, d.culprit.job, xids_of(bundle))
        found = evaluate(ev, past)
        final = apply(d, found)
        past.append(Event(i, at, final.root_cause, ev.node, ev.gpu, ev.job, ev.xids))
        out.append((truth, d.root_cause, final, found))
    return out


@pytest.mark.parametrize("name", ["same-gpu", "spread"])
def test_repeat_xids_on_one_gpu_across_jobs_escalate_and_spread_ones_do_not(name: str, tmp_path: Path) -> None:
    got = replay(name, tmp_path)
    assert len(got) == 3 and len({t["culprit"]["job"] for t, *_ in got}) == 3  # three different jobs
    for truth, engine_cause, final, _ in got:
        assert engine_cause == truth["root_cause"] == "software_error"  # each alone: the application's Xid
        assert (final.culprit.node, final.culprit.job) == (truth["culprit"]["node"], truth["culprit"]["job"])
        assert final.culprit.gpu is not None
    *first, (_, _, third, found) = got
    assert all(not f for *_, f in first)
    if name == "same-gpu":
        assert [c.rule.id for c in found] == ["gpu-app-xid-across-jobs"]
        assert third.root_cause == "gpu_hardware_fault" and third.remediation[0].startswith("Drain the node")
        assert found[0].distinct == 3 and found[0].unit.endswith(f"on {got[0][0]['culprit']['node']}")
    else:
        assert found == [] and third.root_cause == "software_error"


def test_a_gpu_that_vanishes_without_a_line_is_named_by_its_absence(tmp_path: Path) -> None:
    sc = load_scenario(FLEET / "silent-gpu.yaml")
    sim = Simulation(sc)
    with RunWriter(sim, tmp_path) as w:
        sim.run(sc.duration or 0, on_tick=w.tick)
    run = Run.load(tmp_path)
    (truth,) = run.truth
    bundle = parse_bundle(bundle_for_truth(run, truth))
    assert not any("NVRM" in e.line or "Xid" in e.line for e in bundle.logs)  # no driver line at all
    d = SignatureEngine().diagnose(bundle)
    assert d.root_cause == truth["root_cause"] == "gpu_hardware_fault"
    assert (d.culprit.node, d.culprit.gpu) == (truth["culprit"]["node"], truth["culprit"]["gpu"]), d.evidence
