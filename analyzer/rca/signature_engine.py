"""Deterministic signature engine: documented signatures per root cause, scored and localised."""

from __future__ import annotations

import math
import time
from collections import defaultdict

from hpcmind.contract import Alternative, Diagnosis, EvidenceBundle
from hpcmind.taxonomy import UNKNOWN

from . import report
from .culprit import locate
from .findings import Finding, all_findings

ENGINE_NAME = "hpcmind-signatures v1"
# Below this score no root cause is named (a single hint is not a diagnosis).
MIN_SCORE = 4.0
# The earliest decisive log line is usually the root, later ones its cascade.
FIRST_STRONG_BONUS = 2.0
STRONG = 9.0
# Secondary signals of one cause add up, but far less than the strongest one.
SUPPORT_FACTOR = 0.25


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
    return scores


def confidences(scores: dict[str, float]) -> dict[str, float]:
    # Softmax at temperature 2 with "unknown" pinned at MIN_SCORE.
    exp = {c: math.exp(s / 2.0) for c, s in scores.items()}
    z = sum(exp.values()) + math.exp(MIN_SCORE / 2.0)
    return {c: v / z for c, v in exp.items()}


def missing_evidence(bundle: EvidenceBundle) -> list[str]:
    out = []
    if bundle.alert is None:
        out.append("alert")
    if bundle.job is None:
        out.append("slurm job record")
    if not bundle.logs:
        out.append("log lines")
    if not bundle.metrics:
        out.append("metric windows")
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
        support = sorted((f for f in findings if f.cause == cause), key=lambda f: (-f.weight, f.order))
        culprit = locate(bundle, support)
        evidence = list(dict.fromkeys(f.evidence for f in support))[:8]
        signatures = list(dict.fromkeys(f.signature for f in support))
        lead = min((f for f in support if f.order >= 0), key=lambda f: f.order, default=None)
        others = [c for c in ranked if c != cause]
        missing = missing_evidence(bundle)
        return Diagnosis(
            root_cause=cause,
            confidence=round(conf.get(cause, 1.0 - sum(conf.values())), 3),
            culprit=culprit,
            summary=report.summary(cause, culprit, lead.line if lead else None),
            explanation=report.explanation(cause, signatures, others[0] if others else None, missing),
            remediation=report.remediation(cause, culprit),
            evidence=evidence,
            alternatives=[Alternative(root_cause=c, confidence=round(conf[c], 3)) for c in others[:3]],
            model=ENGINE_NAME,
            latency_ms=round((time.perf_counter() - t0) * 1000, 2),
            missing_evidence=missing,
        )
