"""Deterministic signature engine: documented signatures per root cause, scored and localised."""

from __future__ import annotations

import math
import time
from collections import defaultdict

from hpcmind.contract import Diagnosis, EvidenceBundle
from hpcmind.taxonomy import UNKNOWN

from .diagnosis import build_diagnosis
from .findings import Finding, all_findings

ENGINE_NAME = "hpcmind-signatures v1"
# Below this score no root cause is named (a single hint is not a diagnosis).
MIN_SCORE = 4.0
# The earliest decisive log line is usually the root, later ones its cascade.
FIRST_STRONG_BONUS = 2.0
STRONG = 9.0
# Secondary signals of one cause add up, but far less than the strongest one.
SUPPORT_FACTOR = 0.25
# A collective timeout is what the other ranks see when one rank's GPU, link, node or file system fails: beside
# direct evidence of such a failure it is that failure's symptom, not a second diagnosis.
STALLS_RANKS = frozenset(
    {
        "gpu_hardware_fault",
        "gpu_memory_error",
        "nvlink_error",
        "network_fabric",
        "node_failure",
        "host_oom",
        "gpu_oom",
        "storage_io",
    }
)
SYMPTOM_FACTOR = 0.6


def score(findings: list[Finding]) -> dict[str, float]:
    best: dict[str, dict[str, float]] = defaultdict(dict)
    for f in findings:
        sigs = best[f.cause]
        sigs[f.signature] = max(sigs.get(f.signature, 0.0), f.weight)
    scores = {}
    for cause, sigs in best.items():
        ws = sorted(sigs.values(), reverse=True)
        scores[cause] = ws[0] + SUPPORT_FACTOR * sum(ws[1:])
    first = min((f for f in findings if f.order >= 0 and f.weight >= STRONG), key=lambda f: f.order, default=None)
    if first is not None:
        scores[first.cause] += FIRST_STRONG_BONUS
    if "collective_hang" in scores and any(f.cause in STALLS_RANKS and f.weight >= STRONG for f in findings):
        scores["collective_hang"] *= SYMPTOM_FACTOR
    return scores


def confidences(scores: dict[str, float]) -> dict[str, float]:
    # Softmax at temperature 2 with "unknown" pinned at MIN_SCORE.
    exp = {c: math.exp(s / 2.0) for c, s in scores.items()}
    z = sum(exp.values()) + math.exp(MIN_SCORE / 2.0)
    return {c: v / z for c, v in exp.items()}


def probabilities(findings: list[Finding]) -> dict[str, float]:
    """The signature engine's distribution over the ids it saw and `unknown` (the rest of the mass)."""
    scores = score(findings)
    conf = confidences(scores)
    best = max(scores.values(), default=0.0)
    out = dict(conf)
    out[UNKNOWN] = max(0.0, 1.0 - sum(conf.values()))
    if best < MIN_SCORE:  # a single hint is not a diagnosis
        out = {c: v * 0.5 for c, v in out.items()}
        out[UNKNOWN] = 1.0 - sum(v for c, v in out.items() if c != UNKNOWN)
    return out


class SignatureEngine:
    name = ENGINE_NAME

    def diagnose(self, bundle: EvidenceBundle) -> Diagnosis:
        t0 = time.perf_counter()
        findings = all_findings(bundle)
        scores = score(findings)
        conf = confidences(scores)
        ranked = sorted(scores, key=lambda c: (-scores[c], c))
        cause = ranked[0] if ranked and scores[ranked[0]] >= MIN_SCORE else UNKNOWN
        probs = {c: conf[c] for c in ranked}
        probs[UNKNOWN] = 1.0 - sum(conf.values())
        return build_diagnosis(bundle, findings, cause, probs, ENGINE_NAME, t0, [c for c in ranked if c != cause])
