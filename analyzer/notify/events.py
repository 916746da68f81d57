"""Incident events as the webhook and Slack receive them (pure: incident fields in, JSON out)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal

SCHEMA = "hpcmind.incident.v1"
SCHEMA_FILE = Path(__file__).with_name(f"{SCHEMA}.schema.json")
Kind = Literal["opened", "rediagnosed", "resolved"]
MAX_ALERTS = 50


@cache
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return loaded


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def event_id(instance_id: str, iid: int, kind: Kind, revision: int) -> str:
    """Stable across retries and restarts: receivers deduplicate on it."""
    return f"{instance_id}:{iid}:{kind}:{revision}"


def incident_event(
    inc: Any, kind: Kind, base_url: str, instance_id: str, alerts: list[str], written: datetime, previous: str | None
) -> dict[str, Any]:
    """`inc`: an incidents row (id, state, root_cause, confidence, node/gpu/job, summary, diagnosis, onset...)."""
    d = inc.diagnosis or {}
    steps = d.get("remediation") or []
    culprit = {k: str(v) for k, v in (("node", inc.node), ("gpu", inc.gpu), ("job", inc.job)) if v}
    body: dict[str, Any] = {
        "id": inc.id,
        "url": f"{base_url.rstrip('/')}/incidents/{inc.id}",
        "state": inc.state,
        "root_cause": inc.root_cause,
        "confidence": float(inc.confidence) if inc.confidence is not None else None,
        "culprit": culprit,
        "summary": inc.summary,
        "first_step": steps[0] if steps else None,
        "alerts": alerts[:MAX_ALERTS],
        "onset": _iso(inc.onset),
        "resolved_at": _iso(inc.resolved_at),
    }
    if kind == "rediagnosed":
        body["previous_root_cause"] = previous
    return {
        "schema": SCHEMA,
        "id": event_id(instance_id, inc.id, kind, int(inc.revision or 0)),
        "event": kind,
        "sent_at": written.isoformat(),
        "incident": body,
    }


def _mrkdwn(s: str) -> str:
    # Slack's escaping: &, <, > only (they delimit links and mentions)
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(ev: dict[str, Any]) -> dict[str, Any]:
    """A Slack incoming-webhook message (text fallback + blocks); the same event, read by people."""
    i = ev["incident"]
    c = i["culprit"]
    where = ", ".join(f"{k} {v}" for k, v in c.items()) or "not localised"
    cause = i["root_cause"] or "not diagnosed yet"
    conf = f" ({i['confidence']:.0%})" if i["confidence"] is not None else ""
    verb = {"opened": "Incident", "rediagnosed": "Re-diagnosed incident", "resolved": "Resolved incident"}[ev["event"]]
    title = f"{verb} {i['id']}: {cause}{conf} on {where}"
    lines = [f"*<{i['url']}|{_mrkdwn(title)}>*"]
    if i.get("summary"):
        lines.append(_mrkdwn(str(i["summary"])))
    if i.get("first_step") and ev["event"] != "resolved":
        lines.append(f"First: `{_mrkdwn(str(i['first_step']))}`")
    if ev["event"] == "rediagnosed" and i.get("previous_root_cause"):
        lines.append(f"Was: {_mrkdwn(str(i['previous_root_cause']))}")
    return {
        "text": title,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}],
    }


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
