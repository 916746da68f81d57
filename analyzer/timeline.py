"""An incident's timeline: its alerts firing and resolving, and each diagnosis with what it changed. Pure logic."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

Iso = Callable[[datetime | None], str | None]
CULPRIT = ("node", "gpu", "job")


def _culprit(d: Mapping[str, Any]) -> str:
    parts = []
    if d.get("node"):
        parts.append(str(d["node"]))
    if d.get("gpu") is not None and d.get("gpu") != "":
        parts.append(f"GPU {d['gpu']}")
    if d.get("job"):
        parts.append(f"job {d['job']}")
    return ", ".join(parts) or "no culprit"


def changes(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What a diagnosis changed against the previous one: root cause and each culprit field."""
    if before is None:
        return []
    return [
        {"field": f, "from": before.get(f), "to": after.get(f)}
        for f in ("root_cause", *CULPRIT)
        if (before.get(f) or None) != (after.get(f) or None)
    ]


def diagnosis_events(rows: Iterable[Mapping[str, Any]], iso: Iso) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    prev: Mapping[str, Any] | None = None
    for r in rows:
        diff = changes(prev, r)
        head = f"{r['root_cause']} ({float(r['confidence']):.2f}) — {_culprit(r)}"
        if prev is None:
            text = f"diagnosed {head}"
        elif diff:
            moved = "; ".join(f"{c['field'].replace('_', ' ')} {c['from'] or '—'} → {c['to'] or '—'}" for c in diff)
            text = f"re-diagnosed {head}: {moved}"
        else:
            text = f"diagnosis unchanged: {head}"
        if r.get("alerts"):
            text += f" (from {r['alerts']} alert{'s' if r['alerts'] != 1 else ''})"
        out.append(
            {
                "ts": iso(r["at"]),
                "kind": "diagnosis",
                "event": text,
                "root_cause": r["root_cause"],
                "confidence": r["confidence"],
                "culprit": {k: r[k] for k in CULPRIT if r.get(k) not in (None, "")},
                "model": r.get("model"),
                "changes": diff,
            }
        )
        prev = r
    return out


def alert_events(alerts: Iterable[Any], iso: Iso) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for a in alerts:
        out.append({"ts": iso(a.starts_at), "kind": "alert", "event": f"{a.alertname} firing", "labels": a.labels})
        if a.ends_at:
            out.append({"ts": iso(a.ends_at), "kind": "alert", "event": f"{a.alertname} resolved"})
    return out


def timeline(alert_rows: Iterable[Any], diagnosis_rows: Iterable[Mapping[str, Any]], iso: Iso) -> list[dict[str, Any]]:
    """Alerts and diagnoses in time order (a diagnosis after the alerts it read when their times tie)."""
    events = alert_events(alert_rows, iso) + diagnosis_events(diagnosis_rows, iso)
    return sorted(events, key=lambda e: (e["ts"] or "", e["kind"] == "diagnosis"))
