"""`hpcmind bench rca --real FILE`: score an engine on labelled incidents.

A labelled file is JSON Lines: {"id", "root_cause", "bundle", "culprit"?}. Scores: top-1 accuracy,
macro-F1 over the classes present, per-class recall, culprit accuracy per key (node, gpu, job) over
the incidents whose label names that key, and latency percentiles.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from hpcmind.bench_results import percentile, write_results
from hpcmind.contract import BundleError, parse_bundle
from hpcmind.errors import UsageError
from hpcmind.settings import Settings
from hpcmind.taxonomy import UNKNOWN, root_cause_ids

from .rca import DiagnosisEngine
from .rca.gpu_ids import bus_key


@dataclass(frozen=True)
class Labelled:
    id: str
    root_cause: str
    bundle: dict[str, Any]
    culprit: dict[str, str]
    view: str = ""
    aliases: dict[str, list[str]] = field(default_factory=dict)  # other names of the same culprit

    def names(self, key: str, predicted: Any) -> bool:
        """The prediction names the labelled culprit: its id, or for a GPU also its PCI bus id."""
        want = self.culprit.get(key)
        if predicted is None or want is None:
            return False
        if str(predicted) == want:
            return True
        got = str(predicted)
        names = [want, *self.aliases.get(key, [])]  # a label may itself be a bus id
        return key == "gpu" and ":" in got and any(":" in a and bus_key(a) == bus_key(got) for a in names)


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
        culprit = {k: str(v) for k, v in (d.get("culprit") or {}).items()}
        given = d.get("culprit_aliases") or {}
        if not isinstance(given, dict):
            raise UsageError(f'{path}:{n}: culprit_aliases must be an object of lists, like {{"gpu": [...]}}')
        aliases = {str(k): [str(a) for a in v] for k, v in given.items() if isinstance(v, list)}
        out.append(
            Labelled(
                str(d.get("id", n)),
                d["root_cause"],
                d["bundle"],
                culprit,
                str(d.get("view") or d.get("difficulty") or ""),  # real sets: easy / hard / benign
                aliases,
            )
        )
    return out


def evaluate(engine: DiagnosisEngine, items: list[Labelled]) -> dict[str, Any]:
    preds: list[tuple[str, dict[str, Any], float]] = []
    for it in items:
        t0 = time.perf_counter()
        try:
            d = engine.diagnose(parse_bundle(it.bundle))
            pred, culprit = d.root_cause, d.culprit.model_dump()
        except BundleError as exc:
            pred, culprit = f"error: {exc}", {}
        preds.append((pred, culprit, (time.perf_counter() - t0) * 1000))
    return score(engine.name, items, preds)


def score(name: str, items: list[Labelled], preds: list[tuple[str, dict[str, Any], float]]) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class recall, culprit accuracy, false diagnoses on controls, latency."""
    culprit_hits: Counter[str] = Counter()
    culprit_total: Counter[str] = Counter()
    gpu_index_hits = 0  # the stricter reading: the GPU named by its index, not its bus id
    rows = []
    for it, (pred, culprit, _) in zip(items, preds, strict=True):
        for k, v in it.culprit.items():
            if it.root_cause == UNKNOWN:
                continue
            culprit_total[k] += 1
            culprit_hits[k] += it.names(k, culprit.get(k))
            gpu_index_hits += k == "gpu" and culprit.get(k) == str(v)
        rows.append(
            {
                "id": it.id,
                "view": it.view,
                "expected": it.root_cause,
                "predicted": pred,
                "culprit_expected": it.culprit,
                "culprit_predicted": {k: v for k, v in culprit.items() if v},
            }
        )
    labels = sorted({it.root_cause for it in items})
    recall, f1 = {}, []
    for c in labels:
        tp = sum(1 for it, p in zip(items, preds, strict=True) if it.root_cause == c and p[0] == c)
        fn = sum(1 for it, p in zip(items, preds, strict=True) if it.root_cause == c and p[0] != c)
        fp = sum(1 for it, p in zip(items, preds, strict=True) if it.root_cause != c and p[0] == c)
        recall[c] = tp / (tp + fn) if tp + fn else 0.0
        prec = tp / (tp + fp) if tp + fp else 0.0
        f1.append(2 * prec * recall[c] / (prec + recall[c]) if prec + recall[c] else 0.0)
    correct = sum(1 for it, p in zip(items, preds, strict=True) if it.root_cause == p[0])
    # an incident counts as localised when every key its label names was found
    with_culprit = [(it, p) for it, p in zip(items, preds, strict=True) if it.culprit and it.root_cause != UNKNOWN]
    localised = sum(1 for it, p in with_culprit if all(it.names(k, p[1].get(k)) for k in it.culprit))
    controls = [p[0] for it, p in zip(items, preds, strict=True) if it.root_cause == UNKNOWN]
    views = sorted({it.view for it in items if it.view})
    faults = [(it, p) for it, p in zip(items, preds, strict=True) if it.root_cause != UNKNOWN]
    lat = [p[2] for p in preds]
    return {
        "engine": name,
        "n": len(items),
        "top1_accuracy": correct / len(items) if items else 0.0,
        "fault_top1": statistics.fmean(it.root_cause == p[0] for it, p in faults) if faults else None,
        "faults": len(faults),
        "macro_f1": statistics.fmean(f1) if f1 else 0.0,
        "per_class_recall": recall,
        "culprit_accuracy": {k: culprit_hits[k] / culprit_total[k] for k in sorted(culprit_total)},
        "culprit_counts": {k: culprit_total[k] for k in sorted(culprit_total)},
        "culprit_gpu_index_accuracy": gpu_index_hits / culprit_total["gpu"] if culprit_total["gpu"] else None,
        "culprit_all_keys": localised / len(with_culprit) if with_culprit else None,
        "false_diagnosis_rate": (sum(1 for p in controls if p != UNKNOWN) / len(controls)) if controls else None,
        "controls": len(controls),
        "per_view_accuracy": {
            v: statistics.fmean(it.root_cause == p[0] for it, p in zip(items, preds, strict=True) if it.view == v)
            for v in views
        },
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
    if result.get("fault_top1") is not None:
        lines.append(f"| top-1 on faults (n={result['faults']}) | {result['fault_top1']:.3f} |")
    if result.get("false_diagnosis_rate") is not None:
        lines.append(
            f"| healthy/control bundles given a cause (n={result['controls']}) | {result['false_diagnosis_rate']:.3f} |"
        )
    for v, acc in result.get("per_view_accuracy", {}).items():
        lines.append(f"| top-1, {v} | {acc:.3f} |")
    for k, v in result["culprit_accuracy"].items():
        lines.append(f"| culprit {k} accuracy (n={result['culprit_counts'][k]}) | {v:.3f} |")
    if result.get("culprit_gpu_index_accuracy") is not None:
        lines.append(f"| culprit GPU named by index, not bus id | {result['culprit_gpu_index_accuracy']:.3f} |")
    if result.get("culprit_all_keys") is not None:
        lines.append(f"| culprit, every labelled key | {result['culprit_all_keys']:.3f} |")
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


ENGINES = ("signatures", "base", "finetuned", "frozen", "encoder", "mix", "hpcmind", "openai")


def side_by_side(items: list[Labelled], settings: Settings, engines: tuple[str, ...]) -> dict[str, Any]:
    """Every engine on the same incidents. The model engines share one pass: the findings, the rendering,
    the encoder, the base LM and the tuned LM run once per incident and each engine combines what it uses;
    its latency is the sum of those stages plus its own diagnosis assembly, timed per incident."""
    from .rca import lm as lmmod
    from .rca.combine import Weights, combine, gated, pick, signature_probs, softmax_scores
    from .rca.contradictions import ruled_out
    from .rca.diagnosis import build_diagnosis
    from .rca.findings import all_findings
    from .rca.model_engine import ModelEngine, decide
    from .rca.render import render
    from .rca.signature_engine import SignatureEngine

    labels = lmmod.labels()
    m = settings.model
    load: dict[str, float] = {}
    tuned = base = None
    names: dict[str, str] = {"signatures": SignatureEngine.name}
    if {"finetuned", "frozen", "encoder", "mix", "hpcmind"} & set(engines):
        tuned = ModelEngine(m.artifacts, m.cache_dir, "hpcmind", load_all=True)
        load["hpcmind"] = tuned.load_seconds
        names["hpcmind"] = tuned.name
        names["finetuned"] = tuned.lm.name if tuned.lm else "-"
        names["frozen"] = "all-MiniLM-L6-v2 frozen, logistic-regression head (first design)"
        names["encoder"] = "all-MiniLM-L6-v2-LoRA + head, calibrated abstention" if tuned.tuned else names["frozen"]
        names["mix"] = "weighted mix of LM, frozen-encoder head and signatures, no signatures-first gate"
    if "base" in engines:
        t0 = time.perf_counter()
        base = lmmod.LoadedLM.load(m.cache_dir, None)
        load["base"] = time.perf_counter() - t0
        names["base"] = base.name
    remote = None
    if "openai" in engines and m.openai_base_url:
        from .rca import load_engine

        remote = load_engine(settings, "openai")
        names["openai"] = remote.name
    sig = SignatureEngine()
    preds: dict[str, list[tuple[str, dict[str, Any], float]]] = {e: [] for e in engines if e in names}
    weights = {
        "frozen": Weights(0, 1, 0),
        "encoder": Weights(0, 1, 0),
        "finetuned": Weights(1, 0, 0),
        "base": Weights(1, 0, 0),
        "hpcmind": tuned.weights if tuned else Weights(),
        "mix": replace(tuned.mix_weights, gate=None) if tuned else Weights(),
    }
    for it in tqdm(items, desc="bench rca", unit="incident", file=sys.stderr):
        try:
            bundle = parse_bundle(it.bundle)
        except BundleError as exc:
            for e in preds:
                preds[e].append((f"error: {exc}", {}, 0.0))
            continue
        if "signatures" in preds:
            t0 = time.perf_counter()
            d = sig.diagnose(bundle)
            preds["signatures"].append((d.root_cause, d.culprit.model_dump(), (time.perf_counter() - t0) * 1000))
        if remote is not None and "openai" in preds:
            t0 = time.perf_counter()
            d = remote.diagnose(bundle)
            preds["openai"].append((d.root_cause, d.culprit.model_dump(), (time.perf_counter() - t0) * 1000))
        if tuned is None and base is None:
            continue
        stage: dict[str, float] = {}
        t0 = time.perf_counter()
        findings = all_findings(bundle)
        stage["findings"] = time.perf_counter() - t0
        parts: dict[str, Any] = {}
        t0 = time.perf_counter()
        parts["signatures"] = signature_probs(findings, labels)
        stage["signatures"] = time.perf_counter() - t0
        is_gated = tuned is not None and gated(weights["hpcmind"], labels, parts["signatures"])
        # the models run only for the columns that need them on this incident (the engine skips them too)
        need = {"encoder", "frozen", "finetuned", "mix", "base"} & set(preds) or (
            {"hpcmind"} & set(preds) if not is_gated else set()
        )
        t0 = time.perf_counter()
        text = render(bundle) if need else ""
        stage["render"] = time.perf_counter() - t0
        if tuned is not None and need - {"base"}:
            if tuned.head is not None and tuned.encoder is not None:
                from .rca.encoder import embed

                t0 = time.perf_counter()
                parts["frozen"] = tuned.head.proba(embed(tuned.encoder, [text]))[0]
                stage["frozen"] = time.perf_counter() - t0
            if tuned.tuned is not None:
                t0 = time.perf_counter()
                parts["tuned"] = tuned.tuned.proba([text])[0]
                stage["tuned"] = time.perf_counter() - t0
            if tuned.lm is not None and need & {"finetuned", "mix"}:
                t0 = time.perf_counter()
                parts["lm"] = softmax_scores(tuned.lm.score(text), labels)
                stage["lm"] = time.perf_counter() - t0
        if base is not None and "base" in need:
            t0 = time.perf_counter()
            parts["base"] = softmax_scores(base.score(text), labels)
            stage["base"] = time.perf_counter() - t0
        for e in ("frozen", "encoder", "finetuned", "base", "mix", "hpcmind"):
            if e not in preds:
                continue
            t0 = time.perf_counter()
            # the fine-tuned encoder with its abstention: alone (`encoder`) and behind the signatures (`hpcmind`)
            if tuned is not None and tuned.tuned is not None and e in ("encoder", "hpcmind"):
                if e == "hpcmind" and is_gated:
                    used = ["findings", "signatures"]
                    probs = {c: float(x) for c, x in zip(labels, parts["signatures"], strict=True)}
                else:
                    used = ["findings", "signatures", "render", "tuned"]
                    sig_p = parts["signatures"] if e == "hpcmind" else None
                    probs = decide(labels, parts["tuned"], sig_p, tuned.threshold, ruled_out(bundle))
            else:
                w = weights[e]
                lm_p = parts.get("base") if e == "base" else parts.get("lm")
                if e == "hpcmind" and is_gated:
                    used = ["findings", "signatures"]
                else:
                    used = ["findings", "render"] + [
                        k
                        for k, on in (
                            ("lm" if e != "base" else "base", w.lm),
                            ("frozen", w.encoder),
                            ("signatures", w.signatures),
                        )
                        if on
                    ]
                sig_p = parts["signatures"] if w.signatures > 0 else None
                p = combine(w, labels, lm=lm_p, encoder=parts.get("frozen"), signatures=sig_p)
                probs = {c: float(x) for c, x in zip(labels, p, strict=True)}
            cause = pick(probs)
            d = build_diagnosis(bundle, findings, cause, probs, names[e], t0)
            ms = (sum(stage.get(k, 0.0) for k in used) + time.perf_counter() - t0) * 1000
            preds[e].append((d.root_cause, d.culprit.model_dump(), ms))
    results = {e: score(names[e], items, p) for e, p in preds.items()}
    for e, r in results.items():
        r["load_seconds"] = round(load.get("base" if e == "base" else "hpcmind", 0.0), 2) if e != "signatures" else 0.0
    return results


def side_by_side_markdown(results: dict[str, dict[str, Any]], title: str) -> str:
    cols = list(results)

    def row(name: str, f: Any) -> str:
        return f"| {name} | " + " | ".join(f(results[c]) for c in cols) + " |"

    def pct(v: float | None) -> str:
        return "–" if v is None else f"{v:.3f}"

    lines = [f"# {title}", "", f"incidents: {next(iter(results.values()))['n']}", ""]
    lines += ["| metric | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    lines += [
        row("top-1 accuracy", lambda r: pct(r["top1_accuracy"])),
        row("macro-F1", lambda r: pct(r["macro_f1"])),
        row("top-1 on faults", lambda r: pct(r.get("fault_top1"))),
        row("culprit: every labelled key right", lambda r: pct(r["culprit_all_keys"])),
        row("culprit node", lambda r: pct(r["culprit_accuracy"].get("node"))),
        row("culprit gpu (index or bus id)", lambda r: pct(r["culprit_accuracy"].get("gpu"))),
        row("culprit gpu by index", lambda r: pct(r.get("culprit_gpu_index_accuracy"))),
        row("culprit job", lambda r: pct(r["culprit_accuracy"].get("job"))),
        row("false diagnoses on no-fault controls / healthy bundles", lambda r: pct(r["false_diagnosis_rate"])),
        row("latency p50 (ms)", lambda r: f"{r['latency_ms']['p50']:.0f}"),
        row("latency p95 (ms)", lambda r: f"{r['latency_ms']['p95']:.0f}"),
        row("model load (s, once)", lambda r: f"{r['load_seconds']:.1f}"),
    ]
    lines += ["", "Engines:", ""] + [f"- **{c}**: `{results[c]['engine']}`" for c in cols]
    classes = sorted(next(iter(results.values()))["per_class_recall"])
    lines += ["", "| recall per root cause | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    lines += [row(c, lambda r, c=c: f"{r['per_class_recall'].get(c, 0.0):.2f}") for c in classes]
    views = sorted(next(iter(results.values()))["per_view_accuracy"])
    if views:
        lines += ["", "| accuracy per view | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
        lines += [row(v, lambda r, v=v: f"{r['per_view_accuracy'].get(v, 0.0):.3f}") for v in views]
    return "\n".join(lines) + "\n"


def confusion_png(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    classes = sorted({r["expected"] for r in result["incidents"]} | {r["predicted"] for r in result["incidents"]})
    ix = {c: i for i, c in enumerate(classes)}
    mat = np.zeros((len(classes), len(classes)), dtype=int)
    for r in result["incidents"]:
        mat[ix[r["expected"]], ix[r["predicted"]]] += 1
    fig, ax = plt.subplots(figsize=(9, 8))
    ax.imshow(mat / np.maximum(mat.sum(1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=90, fontsize=7)
    ax.set_yticks(range(len(classes)), classes, fontsize=7)
    for i in range(len(classes)):
        for j in range(len(classes)):
            if mat[i, j]:
                ax.text(
                    j,
                    i,
                    str(mat[i, j]),
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if mat[i, j] > 0.5 * mat[i].sum() else "black",
                )
    ax.set_xlabel("predicted")
    ax.set_ylabel("expected")
    ax.set_title(f"{result['engine'][:80]}\ntop-1 {result['top1_accuracy']:.3f} on {result['n']} incidents", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_side_by_side(
    items: list[Labelled], settings: Settings, engines: tuple[str, ...], out_dir: Path, stem: str, title: str
) -> dict[str, Any]:
    results = side_by_side(items, settings, engines)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_results(out_dir, stem, results, side_by_side_markdown(results, title))
    main = "hpcmind" if "hpcmind" in results else next(iter(results))
    confusion_png(results[main], out_dir / f"{stem}_confusion.png")
    return results
