"""`hpcmind bench rca --real FILE`: score an engine on labelled incidents.

A labelled file is JSON Lines: {"id", "root_cause", "bundle", "culprit"?}. Scores: top-1 accuracy,
macro-F1 over the classes present, per-class recall, culprit accuracy per key (node, gpu, job) over
the incidents whose label names that key, and latency percentiles.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpcmind.bench_results import percentile, write_results
from hpcmind.contract import BundleError, parse_bundle
from hpcmind.errors import UsageError
from hpcmind.taxonomy import UNKNOWN, root_cause_ids

from .rca import DiagnosisEngine


@dataclass(frozen=True)
class Labelled:
    id: str
    root_cause: str
    bundle: dict[str, Any]
    culprit: dict[str, str]


def load_labelled(path: Path) -> list[Labelled]:
    known = set(root_cause_ids()) | {UNKNOWN}
    out = []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--real {path}: {exc.strerror}") from None
    for n, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            d = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}:{n}: invalid JSON: {exc.msg}") from None
        if not isinstance(d, dict) or d.get("root_cause") not in known or not isinstance(d.get("bundle"), dict):
            raise UsageError(f"{path}:{n}: needs root_cause (a known id) and bundle (an object)")
        out.append(Labelled(str(d.get("id", n)), d["root_cause"], d["bundle"], d.get("culprit") or {}))
    return out


def evaluate(engine: DiagnosisEngine, items: list[Labelled]) -> dict[str, Any]:
    preds: list[str] = []
    lat: list[float] = []
    culprit_hits: Counter[str] = Counter()
    culprit_total: Counter[str] = Counter()
    rows = []
    for it in items:
        t0 = time.perf_counter()
        try:
            d = engine.diagnose(parse_bundle(it.bundle))
            pred, culprit = d.root_cause, d.culprit.model_dump()
        except BundleError as exc:
            pred, culprit = f"error: {exc}", {}
        lat.append((time.perf_counter() - t0) * 1000)
        preds.append(pred)
        for k, v in it.culprit.items():
            culprit_total[k] += 1
            culprit_hits[k] += culprit.get(k) == str(v)
        rows.append(
            {
                "id": it.id,
                "expected": it.root_cause,
                "predicted": pred,
                "culprit_expected": it.culprit,
                "culprit_predicted": {k: v for k, v in culprit.items() if v},
            }
        )
    labels = sorted({it.root_cause for it in items})
    recall, f1 = {}, []
    for c in labels:
        tp = sum(1 for it, p in zip(items, preds, strict=True) if it.root_cause == c and p == c)
        fn = sum(1 for it, p in zip(items, preds, strict=True) if it.root_cause == c and p != c)
        fp = sum(1 for it, p in zip(items, preds, strict=True) if it.root_cause != c and p == c)
        recall[c] = tp / (tp + fn) if tp + fn else 0.0
        prec = tp / (tp + fp) if tp + fp else 0.0
        f1.append(2 * prec * recall[c] / (prec + recall[c]) if prec + recall[c] else 0.0)
    correct = sum(1 for it, p in zip(items, preds, strict=True) if it.root_cause == p)
    return {
        "engine": engine.name,
        "n": len(items),
        "top1_accuracy": correct / len(items) if items else 0.0,
        "macro_f1": statistics.fmean(f1) if f1 else 0.0,
        "per_class_recall": recall,
        "culprit_accuracy": {k: culprit_hits[k] / culprit_total[k] for k in sorted(culprit_total)},
        "culprit_counts": {k: culprit_total[k] for k in sorted(culprit_total)},
        "latency_ms": {"p50": percentile(lat, 0.5), "p95": percentile(lat, 0.95)},
        "incidents": rows,
    }


def markdown(result: dict[str, Any], title: str) -> str:
    lines = [
        f"# {title}",
        "",
        f"engine: `{result['engine']}`, incidents: {result['n']}",
        "",
        "| metric | value |",
        "|---|---|",
        f"| top-1 accuracy | {result['top1_accuracy']:.3f} |",
        f"| macro-F1 | {result['macro_f1']:.3f} |",
    ]
    for k, v in result["culprit_accuracy"].items():
        lines.append(f"| culprit {k} accuracy (n={result['culprit_counts'][k]}) | {v:.3f} |")
    lines += [
        f"| latency p50 / p95 (ms) | {result['latency_ms']['p50']:.2f} / {result['latency_ms']['p95']:.2f} |",
        "",
        "| root cause | recall |",
        "|---|---|",
    ]
    lines += [f"| {c} | {r:.2f} |" for c, r in sorted(result["per_class_recall"].items())]
    wrong = [r for r in result["incidents"] if r["expected"] != r["predicted"]]
    if wrong:
        lines += ["", "Misdiagnosed:", ""] + [
            f"- {r['id']}: expected {r['expected']}, got {r['predicted']}" for r in wrong
        ]
    return "\n".join(lines) + "\n"


def run(engine: DiagnosisEngine, real: Path, out_dir: Path) -> dict[str, Any]:
    result = evaluate(engine, load_labelled(real))
    result["file"] = str(real)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_results(out_dir, "rca_real", result, markdown(result, f"Root-cause accuracy on {real.name}"))
    return result
