"""What the page templates show, computed from the service's incident dicts (pure: no I/O, no HTML)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from .charts import charts


def age(iso: str | None, now: datetime | None = None) -> str:
    """'3 min', '2 h 5 min', '4 d' since an ISO time."""
    if not iso:
        return ""
    t = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    s = max(0, int(((now or datetime.now(UTC)) - t).total_seconds()))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d"


def culprit_text(c: dict[str, str] | None) -> str:
    """'GPU 3 on gpu-a012, job 4211' rather than a dict."""
    c = c or {}
    where = f"GPU {c['gpu']} on {c['node']}" if c.get("gpu") and c.get("node") else c.get("node", "")
    if c.get("gpu") and not c.get("node"):
        where = f"GPU {c['gpu']}"
    parts = [p for p in (where, f"job {c['job']}" if c.get("job") else "") if p]
    return ", ".join(parts) or "—"


def pct(x: float | None) -> str:
    return "" if x is None else f"{x:.0%}"


def first_sign(evidence: list[str]) -> str:
    """The first evidence line that says something: never a bare traceback header."""
    for line in evidence:
        text = line.split(": ", 1)[-1].strip() if line.startswith(("job", "node", "scheduler")) else line.strip()
        if text and not text.startswith("Traceback (most recent call last)"):
            return line
    return evidence[0] if evidence else ""


def list_row(i: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    return {
        "id": i["id"],
        "url": f"/incidents/{i['id']}",
        "state": i["state"],
        "root_cause": i.get("root_cause") or "diagnosing…",
        "culprit": culprit_text(i.get("culprit")),
        "summary": i.get("summary") or "",
        "confidence": pct(i.get("confidence")),
        "age": age(i.get("onset"), now),
        "onset": i.get("onset") or "",
    }


def prometheus_graph(base: str, expr: str) -> str:
    return f"{base.rstrip('/')}/graph?" + urlencode({"g0.expr": expr, "g0.tab": "0", "g0.range_input": "1h"})


IDENTIFYING = ("Hostname", "hostname", "instance", "gpu", "job_id", "hpc_job", "device", "port")


def silence_link(base: str, alert: dict[str, Any]) -> str:
    """Alertmanager's new-silence form, prefilled with the alert's name and the labels that say where."""
    lb = alert.get("labels") or {}
    matchers = [f'alertname="{lb.get("alertname", "")}"'] + [f'{k}="{lb[k]}"' for k in IDENTIFYING if lb.get(k)]
    return f"{base.rstrip('/')}/#/silences/new?filter=" + quote("{" + ",".join(matchers) + "}", safe="")


def grafana_links(base: str, culprit: dict[str, str], onset: str | None, resolved: str | None) -> list[dict[str, str]]:
    """The node and job dashboards with their variables and the incident's time range set."""
    if not onset:
        return []
    t0 = datetime.fromisoformat(onset.replace("Z", "+00:00"))
    t1 = datetime.fromisoformat(resolved.replace("Z", "+00:00")) if resolved else None
    rng = {
        "from": int(t0.timestamp() * 1000) - 30 * 60_000,
        "to": int(t1.timestamp() * 1000) + 10 * 60_000 if t1 else "now",
    }
    out = []
    if culprit.get("node"):
        out.append(
            {
                "title": f"node {culprit['node']}",
                "url": f"{base.rstrip('/')}/d/hpcmind-node/?" + urlencode({"var-host": culprit["node"], **rng}),
            }
        )
    if culprit.get("job"):
        out.append(
            {
                "title": f"job {culprit['job']}",
                "url": f"{base.rstrip('/')}/d/hpcmind-job/?" + urlencode({"var-job": culprit["job"], **rng}),
            }
        )
    return out


def incident_view(inc: dict[str, Any], links: Any, now: datetime | None = None) -> dict[str, Any]:
    """`links`: the LinksSettings (grafana, prometheus, alertmanager base URLs as browsers reach them)."""
    prometheus = links.prometheus
    d = inc.get("diagnosis") or {}
    remediation = list(dict.fromkeys(d.get("remediation") or []))  # ordered, each step once
    return {
        **list_row(inc, now),
        "headline": d.get("summary") or inc.get("summary") or "Not diagnosed yet",
        "first_step": remediation[0] if remediation else "",
        "remediation": remediation,
        "explanation": d.get("explanation", ""),
        "evidence": d.get("evidence") or [],
        "first_sign": first_sign(d.get("evidence") or []),
        "alternatives": [
            {
                "root_cause": a["root_cause"],
                "confidence": pct(a["confidence"]),
                "runbook": f"/runbooks/{quote(a['root_cause'])}",
            }
            for a in d.get("alternatives") or []
        ],
        "model": d.get("model", ""),
        "missing": d.get("missing_evidence") or [],
        "timeline": inc.get("timeline") or [],
        "charts": charts(inc.get("evidence") or []),
        "queries": [
            {
                **{k: v for k, v in q.items() if k != "samples"},
                "graph": prometheus_graph(prometheus, q["query"]) if q.get("query") else "",
            }
            for q in inc.get("evidence") or []
        ],
        "runbook": f"/runbooks/{quote(inc['root_cause'])}" if inc.get("root_cause") else "",
        "feedback": inc.get("feedback") or [],
        "history": (d.get("history") or {}).get("units") or [],
        "conclusions": (d.get("history") or {}).get("conclusions") or [],
        "actions": inc.get("actions") or [],
        "grafana": grafana_links(links.grafana, inc.get("culprit") or {}, inc.get("onset"), inc.get("resolved_at")),
        "silences": [
            {"alertname": a["alertname"], "url": silence_link(links.alertmanager, a)}
            for a in inc.get("alerts") or []
            if a.get("status") != "resolved"
        ],
    }
