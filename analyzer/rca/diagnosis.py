"""Everything in a diagnosis besides the root cause: culprit, text, quoted evidence, alternatives.

Every engine picks the id its own way and hands it here, so culprit and evidence always come from the
bundle itself (verbatim), never from generated text.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from hpcmind.contract import Alternative, Diagnosis, EvidenceBundle

from . import report
from .culprit import locate
from .findings import Finding, quote
from .masking import redact
from .render import ranked_logs


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


def build_diagnosis(
    bundle: EvidenceBundle,
    findings: list[Finding],
    cause: str,
    probs: dict[str, float],
    model: str,
    t0: float,
    others: Sequence[str] | None = None,
) -> Diagnosis:
    support = sorted((f for f in findings if f.cause == cause), key=lambda f: (-f.weight, f.order))
    culprit = locate(bundle, support)
    evidence = list(dict.fromkeys(f.evidence for f in support))[:8]
    if not evidence:  # a model's call with no documented signature: quote the most telling lines it read
        evidence = [quote(e) for e, _ in ranked_logs(bundle, findings)[:3]]
    signatures = list(dict.fromkeys(f.signature for f in support))
    lead = min((f for f in support if f.order >= 0), key=lambda f: f.order, default=None)
    if others is None:
        others = [c for c in sorted(probs, key=lambda c: -probs[c]) if c != cause]
    missing = missing_evidence(bundle)
    # quoted lines can carry credentials: they leave here redacted, for every reader (API, pages, annotations, MCP)
    return Diagnosis(
        root_cause=cause,
        confidence=round(probs.get(cause, 0.0), 3),
        culprit=culprit,
        summary=redact(report.summary(cause, culprit, lead.line if lead else None)),
        explanation=report.explanation(cause, signatures, others[0] if others else None, missing),
        remediation=[redact(r) for r in report.remediation(cause, culprit, signatures)],
        evidence=[redact(e) for e in evidence],
        alternatives=[Alternative(root_cause=c, confidence=round(probs.get(c, 0.0), 3)) for c in others[:3]],
        model=model,
        latency_ms=round((time.perf_counter() - t0) * 1000, 2),
        missing_evidence=missing,
    )
