"""`hpcmind diagnose`: the CLI form of the diagnose contract."""

from __future__ import annotations

import json
import sys
from typing import TextIO

from hpcmind.contract import BundleError, Diagnosis, parse_bundle_text
from hpcmind.errors import UsageError

from .rca import DiagnosisEngine
from .rca.report import where


def _open(path: str) -> TextIO:
    if path == "-":
        return sys.stdin
    try:
        return open(path, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"FILE {path}: {exc.strerror}") from None


def human(d: Diagnosis) -> str:
    lines = [f"root cause : {d.root_cause} (confidence {d.confidence:.2f})"]
    loc = where(d.culprit)
    if loc:
        lines.append(f"where      : {loc}")
    lines.append(f"summary    : {d.summary}")
    lines += ["what to do :"] + [f"  {i}. {s}" for i, s in enumerate(d.remediation, 1)]
    if d.evidence:
        lines += ["evidence   :"] + [f"  - {e[:200]}" for e in d.evidence[:5]]
    if d.missing_evidence:
        lines.append(f"missing    : {', '.join(d.missing_evidence)}")
    lines.append(f"engine     : {d.model}, {d.latency_ms:.1f} ms")
    return "\n".join(lines)


def run_single(engine: DiagnosisEngine, path: str, as_json: bool, out: TextIO) -> int:
    with _open(path) as fh:
        text = fh.read()
    try:
        bundle = parse_bundle_text(text)
    except BundleError as exc:
        raise UsageError(str(exc)) from None
    d = engine.diagnose(bundle)
    out.write((json.dumps(d.to_json_dict()) if as_json else human(d)) + "\n")
    return 0


def run_batch(engine: DiagnosisEngine, path: str, out: TextIO) -> int:
    bad = 0
    with _open(path) as fh:
        for n, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                result = engine.diagnose(parse_bundle_text(raw)).to_json_dict()
            except BundleError as exc:
                bad += 1
                result = {"line": n, "error": str(exc)}
            out.write(json.dumps(result) + "\n")
            out.flush()
    return 2 if bad else 0
