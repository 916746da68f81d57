"""Writing incident events into the outbox, inside the transaction that changed the incident."""

from __future__ import annotations

from sqlalchemy import Connection, and_, select

from hpcmind.settings import NotifySettings

from ..store import as_json, incident_alerts, incidents, notify_outbox, now
from .events import Kind, incident_event


def targets(n: NotifySettings) -> list[str]:
    return [t for t, url in (("webhook", n.webhook_url), ("slack", n.slack_url)) if url]


def enqueue_event(
    c: Connection, n: NotifySettings, iid: int, kind: Kind, base_url: str, instance_id: str, previous: str | None = None
) -> None:
    """One row per configured target; the same event written twice (a replay after a crash) is written once."""
    to = targets(n)
    if not to:
        return
    inc = c.execute(select(incidents).where(incidents.c.id == iid)).one()
    if kind == "resolved" and inc.root_cause is None:
        return  # resolved before its first diagnosis: that diagnosis announces it ("opened", state resolved)
    names = c.execute(
        select(incident_alerts.c.alertname)
        .where(incident_alerts.c.incident_id == iid)
        .order_by(incident_alerts.c.starts_at)
    ).scalars()
    alerts = list(dict.fromkeys(names))
    ev = incident_event(inc, kind, base_url, instance_id, alerts, now(), previous)
    for t in to:
        seen = c.execute(
            select(notify_outbox.c.id).where(and_(notify_outbox.c.event_id == ev["id"], notify_outbox.c.target == t))
        ).first()
        if seen is None:
            c.execute(
                notify_outbox.insert().values(
                    incident_id=iid, event_id=ev["id"], target=t, payload=as_json(ev), attempts=0, next_at=now()
                )
            )
