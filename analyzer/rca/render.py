"""One deterministic rendering of an evidence bundle as model input, within a character budget.

Training and inference call the same function. Order: the alert, the Slurm job, the metric anomalies
(polars: which series left its baseline, where, when and how far), then log lines ranked by how much they
say — a known error signature first, then rare lines over repeated ones, error words over chatter — each
template once with its repeat count. Lines are quoted data: the model is told never to follow them.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime

from hpcmind.contract import EvidenceBundle, LogLine, MetricSeries

from .facts import bundle_facts
from .findings import MAX_LINES, Finding, all_findings
from .localize import onsets
from .metric_rules import host_of

MAX_CHARS = 1500  # about 450 SmolLM2 tokens; the encoder reads the first ~256 word pieces
MAX_METRIC_LINES = 6
MAX_LINE_CHARS = 200
_VARIABLE = re.compile(r"0x[0-9a-fA-F]+|[0-9a-fA-F]{8,}|\d+")
_ERROR_WORDS = re.compile(
    r"error|fail|fatal|killed|timeout|timed out|exception|panic|abort|nan\b|oom|unreachable|denied|"
    r"not responding|lost|down|throttl|corrupt|invalid|refused|cannot|unable",
    re.IGNORECASE,
)
# a counter of zero is not an error: "oom 0", "errors: 0", "number of nan iterations: 0", "0 failed"
_ZERO_COUNTS = re.compile(
    r"\b(?:errors?|fail(?:ed|ures?)?|oom|nan(?: iterations)?|skipped(?: iterations)?|timeouts?|lost)"
    r"\s*[:=|]?\s*0(?![.\d])"
    r"|(?<![.\d])0\s+(?:errors?|failed|failures?|lost|timeouts?)\b",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def template(line: str) -> str:
    return _VARIABLE.sub("#", line)


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S")


def _alert_text(bundle: EvidenceBundle) -> list[str]:
    if bundle.alert is None:
        return []
    lb = bundle.alert.labels
    keys = [f"{k}={v}" for k, v in sorted(lb.items()) if k not in ("alertname", "severity") and len(v) < 60]
    text = f"ALERT {lb.get('alertname', '?')} {' '.join(keys[:6])}".rstrip()
    summary = bundle.alert.annotations.get("summary") or bundle.alert.annotations.get("description")
    return [text + (f" | {summary[:150]}" if summary else "")]


def _job_text(bundle: EvidenceBundle) -> list[str]:
    j = bundle.job
    if j is None:
        return []
    parts = [f"JOB {j.id or '?'}"]
    parts += [f"{k}={v}" for k, v in (("name", j.name), ("state", j.state), ("exit", j.exit_code)) if v]
    if j.reason and j.reason.lower() != "none":
        parts.append(f"reason={j.reason}")
    if j.time_limit:
        parts.append(f"limit={j.time_limit}")
    if j.nodes:
        parts.append(f"nodes={','.join(j.nodes[:4])}" + (f"+{len(j.nodes) - 4}" if len(j.nodes) > 4 else ""))
    return [" ".join(parts)]


def _fmt(v: float) -> str:
    return f"{v:.3g}"


_COUNTER = re.compile(r"(_total|_count|_sum|_bucket|_TOTAL|_VIOLATION)$")
MIN_RELATIVE = 0.3


def _as_increase(s: MetricSeries) -> MetricSeries:
    """A counter's level says nothing; its increase per sample does (resets count as zero)."""
    if not _COUNTER.search(s.name) or len(s.values) < 2:
        return s
    vals = [(t, max(v - p, 0.0)) for (_, p), (t, v) in zip(s.values, s.values[1:], strict=False)]
    return MetricSeries(name=s.name, labels=s.labels, values=vals)


def _metric_text(bundle: EvidenceBundle) -> list[str]:
    if not bundle.metrics:
        return []
    df = onsets([_as_increase(s) for s in bundle.metrics])
    if df.is_empty():
        return [f"METRICS {len(bundle.metrics)} series, none left its baseline"]
    # the largest relative deviations, then the earliest; a few percent of drift is not an anomaly
    rel = [r for r in df.iter_rows(named=True) if r["jump"] >= MIN_RELATIVE * abs(r["baseline"])]
    rows = sorted(
        rel,
        key=lambda r: (-min(r["jump"] / (abs(r["baseline"]) + 1e-9), 1e6), r["onset"], r["series"]),
    )[:MAX_METRIC_LINES]
    if not rows:
        return [f"METRICS {len(bundle.metrics)} series, none left its baseline by {MIN_RELATIVE:.0%}"]
    out = [f"METRICS {len(rel)} of {len(bundle.metrics)} series deviated:"]
    for r in sorted(rows, key=lambda r: (r["onset"], r["series"])):
        s = bundle.metrics[r["series"]]
        where = " ".join(x for x in (host_of(s.labels), f"gpu{r['gpu']}" if r["gpu"] else None) if x)
        extra = next((f"{k}={s.labels[k]}" for k in ("err_code", "device", "port", "mountpoint") if k in s.labels), "")
        name = s.name + (" increase" if _COUNTER.search(s.name) else "")
        out.append(
            f"- {name} {where} {extra}".rstrip()
            + f": {_fmt(r['baseline'])} -> {_fmt(r['peak'])} at {_clock(r['onset'])}"
        )
    return out


def error_words(line: str) -> bool:
    return bool(_ERROR_WORDS.search(_ZERO_COUNTS.sub(" ", line)))


def trend(first: str, last: str) -> str:
    """How a repeated line's numbers moved from its first to its last occurrence ("0.25 -> 0.000122"), where only
    one number changed: a loss scale halving, a counter climbing, a retry count."""
    a, b = _NUMBER.findall(first), _NUMBER.findall(last)
    if len(a) != len(b):
        return ""
    moved = [(x, y) for x, y in zip(a, b, strict=True) if x != y]
    return f"{moved[0][0]} -> {moved[0][1]}" if len(moved) == 1 else ""


def ranked_logs(bundle: EvidenceBundle, findings: list[Finding]) -> list[tuple[LogLine, int]]:
    """Log lines, most telling first, each template once (its first occurrence) with how often it occurs.

    Score: a known signature's weight (doubled), rarity of the line's template, and error words."""
    return [(first, n) for first, n, _ in _ranked(bundle, findings)]


def _ranked(bundle: EvidenceBundle, findings: list[Finding]) -> list[tuple[LogLine, int, tuple[LogLine, LogLine]]]:
    """Each distinct line (by template), most telling first: the line shown, how often its template repeats, and
    the template's first and last occurrence (what the repeated number moved from and to)."""
    logs = bundle.logs[-MAX_LINES:]
    known: dict[int, float] = {}
    for f in findings:
        if f.order >= 0 and f.line is not None:
            known[f.order] = max(known.get(f.order, 0.0), f.weight)
    tpls = [template(e.line) for e in logs]
    counts = Counter(tpls)
    scores = [
        2.0 * known.get(i, 0.0) + 3.0 / counts[t] + (3.0 if error_words(e.line) else 0.0)
        for i, (e, t) in enumerate(zip(logs, tpls, strict=True))
    ]
    last = {t: logs[i] for i, t in enumerate(tpls)}
    first = {t: logs[i] for i, t in reversed(list(enumerate(tpls)))}
    seen: set[str] = set()
    out = []
    for i in sorted(range(len(logs)), key=lambda i: (-scores[i], i)):
        if tpls[i] not in seen:
            seen.add(tpls[i])
            out.append((logs[i], counts[tpls[i]], (first[tpls[i]], last[tpls[i]])))
    return out


def _log_text(bundle: EvidenceBundle, findings: list[Finding], budget: int) -> list[str]:
    n = len(bundle.logs[-MAX_LINES:])
    if not n:
        return []
    out = [f"LOGS {n} lines, most telling first:"]
    used = len(out[0])
    for e, count, (start, final) in _ranked(bundle, findings):
        src = f"{e.source}: " if e.source else ""
        moved = trend(start.line, final.line) if count > 2 else ""
        rep = f" [x{count}{', ' + moved if moved else ''}]" if count > 1 else ""
        text = f"> {src}{e.line.strip()[:MAX_LINE_CHARS]}{rep}"
        if used + len(text) + 1 > budget:
            break
        out.append(text)
        used += len(text) + 1
    return out


def render(bundle: EvidenceBundle, max_chars: int = MAX_CHARS) -> str:
    findings = all_findings(bundle)
    facts = bundle_facts(bundle)
    facts_text = ["FACTS " + "; ".join(facts)] if facts else []
    head = _alert_text(bundle) + _job_text(bundle) + facts_text + _metric_text(bundle)
    head_text = "\n".join(head)[: max_chars // 2]
    logs = _log_text(bundle, findings, max_chars - len(head_text) - 1)
    return "\n".join([head_text, *logs]).strip() if head_text else "\n".join(logs)
