"""The learned layer's decision: encoder alone where the signatures are silent, abstention below the threshold."""

from __future__ import annotations

import numpy as np

from analyzer.rca.combine import pick
from analyzer.rca.lm import labels
from analyzer.rca.model_engine import decide
from analyzer.training.train_encoder import abstain, fit_threshold
from hpcmind.taxonomy import UNKNOWN

L = labels()


def dist(**p: float) -> np.ndarray:
    rest = (1.0 - sum(p.values())) / (len(L) - len(p))  # the remaining mass spread over the other ids
    v = np.full(len(L), rest)
    for k, x in p.items():
        v[L.index(k)] = x
    return v


def test_silent_signatures_leave_the_encoder_to_decide() -> None:
    sig = dist(unknown=0.99)
    enc = dist(storage_io=0.8, unknown=0.1)
    assert pick(decide(L, enc, sig, threshold=0.5)) == "storage_io"


def test_below_the_threshold_the_answer_is_unknown() -> None:
    enc = dist(storage_io=0.45, host_oom=0.35, unknown=0.1)
    assert pick(decide(L, enc, None, threshold=0.5)) == UNKNOWN
    assert pick(decide(L, enc, None, threshold=0.4)) == "storage_io"


def test_weak_signature_evidence_is_multiplied_with_the_encoder() -> None:
    sig = dist(host_oom=0.5, gpu_oom=0.3, unknown=0.2)
    enc = dist(gpu_oom=0.6, host_oom=0.1, unknown=0.2)
    assert pick(decide(L, enc, sig, threshold=0.3)) == "gpu_oom"


def test_fit_threshold_respects_the_healthy_budget() -> None:
    probs = np.stack([dist(gpu_oom=0.9), dist(gpu_oom=0.55), dist(host_oom=0.6), dist(host_oom=0.3, unknown=0.2)])
    y = ["gpu_oom", "gpu_oom", UNKNOWN, "host_oom"]
    t, stats = fit_threshold(probs, y, L, max_false=0.0)
    assert t > 0.55  # the healthy bundle near 0.6 must abstain; the 0.9 fault still counts
    assert stats["healthy_false"] == 0.0
    assert abstain(probs, L, t)[2] == UNKNOWN and abstain(probs, L, t)[0] == "gpu_oom"


def test_a_cause_the_numbers_rule_out_loses_its_share() -> None:
    sig = dist(unknown=0.99)
    enc = dist(dataloader_bottleneck=0.9, unknown=0.05)
    assert pick(decide(L, enc, sig, threshold=0.5)) == "dataloader_bottleneck"
    out = decide(L, enc, sig, threshold=0.5, excluded={"dataloader_bottleneck": "data wait is at most 3% of a step"})
    assert out["dataloader_bottleneck"] == 0.0 and pick(out) == UNKNOWN
    enc2 = dist(dataloader_bottleneck=0.5, storage_io=0.45)
    assert pick(decide(L, enc2, sig, threshold=0.5, excluded={"dataloader_bottleneck": "x"})) == "storage_io"
