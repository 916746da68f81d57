"""Grafana write-back through an outbox: each incident's annotation is created or rewritten, retried with backoff,
so a Grafana outage loses nothing."""

from __future__ import annotations

import html
import logging
import re
from typing import Any

from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException, GrafanaServerError
from sqlalchemy import select, update

from hpcmind.settings import Settings

from . import outbox
from .service import Metrics
from .store import Store, grafana_outbox, incidents

log = logging.getLogger("hpcmind.grafana")
MAX_BACKOFF = 60.0


def _tag(v: str) -> str:
    # grafana-client puts tags into query strings unencoded: keep them to [A-Za-z0-9:_-]
    return re.sub(r"[^A-Za-z0-9:_-]", "_", v)


def incident_tags(instance_id: str, iid: int) -> list[str]:
    """The tags that make an annotation this store's for this incident: how a retried create finds the first one."""
    return [_tag(f"hpcmind-store:{instance_id}"), f"hpcmind-incident:{iid}"]


def annotation_for(inc: Any, base_url: str, instance_id: str = "") -> dict[str, Any]:
    d = inc.diagnosis or {}
    e = html.escape  # Grafana renders annotation text as HTML: labels and log lines must not become markup
    culprit = ", ".join(f"{k} {v}" for k, v in (d.get("culprit") or {}).items())
    step = (d.get("remediation") or ["(no remediation)"])[0]
    text = (
        f"<b>{e(str(d.get('root_cause', 'unknown')))}</b> ({d.get('confidence', 0):.0%}) — "
        f"{e(str(d.get('summary', '')))}<br>"
        f"Culprit: {e(culprit) or 'not localised'}<br>First step: {e(str(step))}<br>"
        f'<a href="{e(base_url)}/incidents/{inc.id}">Incident {inc.id}</a>'
    )
    tags = ["hpcmind", _tag(d.get("root_cause", "unknown"))]
    tags += incident_tags(instance_id, inc.id) if instance_id else []
    if inc.node:
        tags.append(_tag(f"node:{inc.node}"))
    if inc.job:
        tags.append(_tag(f"job:{inc.job}"))
    ann: dict[str, Any] = {"time": int(inc.onset.timestamp() * 1000), "tags": tags, "text": text}
    if inc.resolved_at is not None:
        ann["timeEnd"] = int(inc.resolved_at.timestamp() * 1000)
    return ann


class GrafanaWriter:
    def __init__(self, settings: Settings, store: Store, metrics: Metrics, base_url: str) -> None:
        a = settings.analyzer
        self.api = GrafanaApi.from_url(
            a.grafana_url, credential=a.grafana_token.get_secret_value() or None, timeout=5.0
        )
        self.store = store
        self.metrics = metrics
        self.base_url = base_url
        self.failing = False

    def pending(self) -> int:
        return outbox.pending(self.store, grafana_outbox)

    def drain_once(self) -> int:
        """Deliver the due outbox entries; returns how many were written."""
        due = outbox.due(self.store, grafana_outbox, 50)
        written = 0
        done_incidents: set[int] = set()
        for row in due:
            if row.incident_id in done_incidents:  # a newer entry for the same incident was just written
                self._finish(row.id, None)
                continue
            with self.store.tx() as c:
                inc = c.execute(select(incidents).where(incidents.c.id == row.incident_id)).one()
            body = annotation_for(inc, self.base_url, self.store.instance_id)
            try:
                # a create that timed out or whose id was never stored (a crash) left an annotation: find it, once
                aid = inc.grafana_annotation_id or self._existing(inc.id, body["time"])
                if aid:
                    if not inc.grafana_annotation_id:
                        self._remember(inc.id, aid)
                    if not self._update(aid, body):  # someone deleted it in Grafana: write it again
                        log.warning("annotation %d of incident %d is gone from Grafana: creating it again", aid, inc.id)
                        aid = None
                if not aid:
                    res = self.api.annotations.add_annotation(
                        time_from=body["time"], time_to=body.get("timeEnd"), tags=body["tags"], text=body["text"]
                    )
                    self._remember(inc.id, int(res["id"]))
            except (GrafanaException, GrafanaClientError, GrafanaServerError, OSError, KeyError) as exc:
                self.metrics.grafana_failures.inc()
                outbox.retry_later(self.store, grafana_outbox, row, f"{type(exc).__name__}: {exc}", MAX_BACKOFF)
                if not self.failing:  # once per outage, not once per retry
                    log.warning("Grafana unreachable or refusing annotations (kept in the outbox, retrying): %s", exc)
                self.failing = True
                break  # Grafana is probably down: try again later, in order
            if self.failing:
                log.warning("Grafana answers again: writing the queued annotations")
                self.failing = False
            self._finish(row.id, None)
            done_incidents.add(row.incident_id)
            written += 1
        self.metrics.outbox.set(self.pending())
        return written

    def _update(self, aid: int, body: dict[str, Any]) -> bool:
        """False when the annotation no longer exists (404); other errors propagate and are retried."""
        try:
            self.api.annotations.update_annotation(
                aid, time_from=body["time"], time_to=body.get("timeEnd"), tags=body["tags"], text=body["text"]
            )
        except GrafanaClientError as exc:
            if getattr(exc, "status_code", None) == 404:
                return False
            raise
        return True

    def _existing(self, iid: int, t_ms: int) -> int | None:
        found = self.api.annotations.find_annotations(
            time_from=t_ms - 60_000,
            time_to=t_ms + 60_000,
            ann_type="annotation",
            tags=incident_tags(self.store.instance_id, iid),
            limit=10,
        )
        ids = sorted(int(a["id"]) for a in found or [] if "id" in a)
        return ids[0] if ids else None

    def _remember(self, iid: int, aid: int) -> None:
        with self.store.tx() as c:
            c.execute(update(incidents).where(incidents.c.id == iid).values(grafana_annotation_id=aid))

    def _finish(self, oid: int, err: str | None) -> None:
        outbox.finish(self.store, grafana_outbox, oid, err)
