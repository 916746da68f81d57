"""Incident service: payloads in, incidents with a timeline, evidence and a diagnosis out. Pure of HTTP."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Row

from hpcmind.contract import Diagnosis
from hpcmind.settings import Settings
from hpcmind.taxonomy import UNKNOWN, root_cause_ids

from . import leases
from .actions.service import ActionService
from .alertmanager import Alert, AlertmanagerPayload
from .evidence.breaker import Breaker
from .evidence.gather import build_bundle, gather_logs, gather_metrics, items_json, job_record
from .fleet import history as fleet
from .fleet import store as fleet_store
from .notify.events import Kind
from .notify.outbox import enqueue_event
from .rca import DiagnosisEngine
from .store import (
    RECORD_LOCK,
    Store,
    as_json,
    diagnoses,
    feedback,
    grafana_outbox,
    incident_alerts,
    incident_entities,
    incidents,
    log_lines,
    now,
    payloads,
    serialize,
    utc,
)
from .timeline import timeline

log = logging.getLogger("hpcmind.analyzer")
RECORD_CHUNK = 500
DIAGNOSIS_LEASE_MARGIN_S = 120.0
MAX_REDIAGNOSES = 3
CORRELATION_WINDOW = timedelta(minutes=30)


class NotFound(LookupError):
    pass


class BadRequest(ValueError):
    pass


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.webhook = Counter(
            "hpcmind_webhook_requests", "Alertmanager webhook requests by outcome.", ["outcome"], registry=r
        )
        self.queue = Gauge("hpcmind_queue_depth", "Payloads waiting to be processed.", registry=r)
        self.latency = Histogram(
            "hpcmind_diagnosis_latency_seconds",
            "Time to gather evidence and diagnose.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.incidents = Counter(
            "hpcmind_incidents", "Incidents by root cause (at first diagnosis).", ["root_cause"], registry=r
        )
        self.outbox = Gauge("hpcmind_grafana_outbox_size", "Grafana annotation writes waiting.", registry=r)
        self.grafana_failures = Counter("hpcmind_grafana_failures", "Failed Grafana annotation writes.", registry=r)
        self.notify_outbox = Gauge(
            "hpcmind_notify_outbox_size", "Incident events waiting for the webhook or Slack.", registry=r
        )
        self.notify_failures = Counter(
            "hpcmind_notify_failures", "Failed incident event deliveries by target.", ["target"], registry=r
        )
        self.log_lines = Counter("hpcmind_log_lines_ingested", "Log lines accepted by the ingest.", ["bus"], registry=r)
        self.breaker_open = Gauge(
            "hpcmind_prometheus_breaker_open",
            "1 while evidence queries to Prometheus are skipped after a timeout or refusal (0.5: probing).",
            registry=r,
        )
        self.breaker_opened = Counter(
            "hpcmind_prometheus_breaker_opened", "Times the Prometheus breaker opened.", registry=r
        )
        self.model_ready = Gauge(
            "hpcmind_model_ready",
            "1 when the learned root-cause model is loaded (the signatures need none).",
            registry=r,
        )


class AnalyzerService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        engine: DiagnosisEngine,
        metrics: Metrics | None = None,
        runbook_base: str | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.engine = engine
        self.metrics = metrics or Metrics()
        a = settings.analyzer
        self.base_url = runbook_base or f"http://{a.host}:{a.port}"
        self.breaker = Breaker(a.prometheus_cooldown_s)
        self._breaker_seen = 0
        # several workers: alerts are recorded (correlated) one transaction at a time, so two payloads of one fault
        # cannot both open an incident; an incident is diagnosed by one worker at a time
        self._record_lock = threading.Lock()
        self._diagnosing: dict[int, tuple[threading.Lock, list[int]]] = {}  # lock and its users, per incident
        self._diagnosing_lock = threading.Lock()
        self.actions = ActionService(settings, store, self.metrics.registry)
        self.owner = leases.replica_id(a.replica_id, a.port)
        # a diagnosis lease outlives the slowest diagnosis (its whole evidence budget, then the model)
        self._lease_s = a.evidence_budget_s + DIAGNOSIS_LEASE_MARGIN_S

    # ---------------------------------------------------------------- intake
    def accept(self, payload: AlertmanagerPayload) -> int:
        """Store the payload durably; processing happens later (and again after a crash)."""
        with self.store.tx() as c:
            res = c.execute(
                payloads.insert().values(received_at=now(), body=payload.model_dump(mode="json"), processed=False)
            )
            return int(res.inserted_primary_key[0])  # type: ignore[index]

    def pending_payloads(self) -> list[int]:
        with self.store.tx() as c:
            return [
                r[0]
                for r in c.execute(select(payloads.c.id).where(payloads.c.processed.is_(False)).order_by(payloads.c.id))
            ]

    def stale_payloads(self, older_than_s: float) -> list[int]:
        """Accepted payloads still unprocessed after `older_than_s`: a replica that stopped left them."""
        cutoff = now() - timedelta(seconds=older_than_s)
        with self.store.tx() as c:
            q = select(payloads.c.id).where(payloads.c.processed.is_(False), payloads.c.received_at < cutoff)
            return [int(r[0]) for r in c.execute(q.order_by(payloads.c.id).limit(1000))]

    def ingest_logs(self, lines: list[dict[str, str]], bus: str = "http") -> int:
        rows = []
        for ln in lines:
            ts = datetime.fromisoformat(ln["ts"].replace("Z", "+00:00")) if ln.get("ts") else now()
            rows.append({"id": ln["id"], "ts": utc(ts), "source": ln.get("source") or "unknown", "line": ln["line"]})
        if not rows:
            return 0
        dialect = self.store.engine.dialect.name
        ins = (pg_insert(log_lines) if dialect == "postgresql" else sqlite_insert(log_lines)).values(rows)
        with self.store.tx() as c:
            c.execute(ins.on_conflict_do_nothing(index_elements=["id"]))  # at-least-once: duplicates by id
        self.metrics.log_lines.labels(bus).inc(len(rows))
        return len(rows)

    # ---------------------------------------------------------------- processing
    def process(self, payload_id: int) -> list[int]:
        with self.store.tx() as c:
            row = c.execute(select(payloads.c.body, payloads.c.processed).where(payloads.c.id == payload_id)).first()
        if row is None or row.processed:
            return []
        payload = AlertmanagerPayload.model_validate(row.body)
        touched: set[int] = set()
        # in chunks: a storm of alerts in one payload lets another worker's alerts in between (each chunk commits its
        # alerts with their incidents' revisions, so a crash in between is finished by the replay below)
        for i in range(0, max(1, len(payload.alerts)), RECORD_CHUNK):
            with self._record_lock, self.store.tx() as c:
                serialize(c, RECORD_LOCK)  # another replica records the same alerts: one at a time, store-wide
                for alert in payload.alerts[i : i + RECORD_CHUNK]:
                    iid = self._record_alert(c, alert)
                    if iid is not None:
                        touched.add(iid)
        with self.store.tx() as c:
            # a replay after a crash: the alerts are recorded, but their incidents may never have been diagnosed
            touched |= set(self._pending(c, self._incidents_of(c, payload.alerts)))
        for iid in sorted(touched):
            self._diagnose_or_record_failure(iid)
        with self.store.tx() as c:
            c.execute(update(payloads).where(payloads.c.id == payload_id).values(processed=True))
        return sorted(touched)

    def _diagnose_or_record_failure(self, iid: int) -> bool:
        """Whether this call diagnosed the incident. One incident's failure must not hold back the others, nor fail
        forever: it is recorded as a failed diagnosis."""
        try:
            return self.diagnose_incident(iid) is not None
        except Exception as exc:
            log.exception("incident %d: diagnosis failed", iid)
            self._record_failure(iid, exc)
            return False

    def _record_failure(self, iid: int, exc: Exception) -> None:
        """An honest `unknown` that names the failure, so the incident is not silently left without a diagnosis."""
        reason = f"{type(exc).__name__}: {str(exc)[:300]}"
        with self.store.tx() as c:
            rev = c.execute(select(incidents.c.revision).where(incidents.c.id == iid)).scalar()
            c.execute(
                update(incidents)
                .where(incidents.c.id == iid)
                .values(
                    root_cause=UNKNOWN,
                    confidence=0.0,
                    summary=f"Diagnosis failed ({reason}); the alerts are recorded",
                    diagnosis={
                        "root_cause": UNKNOWN,
                        "confidence": 0.0,
                        "summary": f"Diagnosis failed ({reason})",
                        "missing_evidence": [f"diagnosis ({reason})"],
                        "remediation": [],
                        "evidence": [],
                    },
                    diagnosed_revision=rev or 0,
                    updated_at=now(),
                )
            )
            n_alerts = c.execute(
                select(func.count()).select_from(incident_alerts).where(incident_alerts.c.incident_id == iid)
            ).scalar()
            c.execute(
                diagnoses.insert().values(
                    incident_id=iid,
                    at=now(),
                    revision=rev or 0,
                    alerts=n_alerts or 0,
                    root_cause=UNKNOWN,
                    confidence=0.0,
                    model=f"failed: {reason}"[:200],
                )
            )

    def undiagnosed(self) -> list[int]:
        """Incidents with an accepted alert no diagnosis has seen yet (what a crash mid-payload leaves)."""
        with self.store.tx() as c:
            return self._pending(c, None)

    def diagnose_pending(self) -> list[int]:
        """Diagnose what is pending (at start, and in each sweep); returns the incidents diagnosed here. One that
        raises is recorded as a failed diagnosis, as in `process`, so a sweep does not retry it forever."""
        return [iid for iid in self.undiagnosed() if self._diagnose_or_record_failure(iid)]

    @staticmethod
    def _pending(c: Connection, among: set[int] | None) -> list[int]:
        q = select(incidents.c.id).where(incidents.c.revision > incidents.c.diagnosed_revision)
        if among is not None:
            if not among:
                return []
            q = q.where(incidents.c.id.in_(sorted(among)))
        return [int(r[0]) for r in c.execute(q.order_by(incidents.c.id))]

    @classmethod
    def _incidents_of(cls, c: Connection, alerts: list[Alert]) -> set[int]:
        return {int(r.incident_id) for a in alerts if (r := cls._stored_alert(c, a)) is not None}

    @staticmethod
    def _stored_alert(c: Connection, alert: Alert) -> Row[Any] | None:
        """The recorded alert with this fingerprint and start (one firing of one alert), if any."""
        return c.execute(
            select(incident_alerts).where(
                and_(
                    incident_alerts.c.fingerprint == alert.fingerprint,
                    incident_alerts.c.starts_at == utc(alert.startsAt),
                )
            )
        ).first()

    def _record_alert(self, c: Connection, alert: Alert) -> int | None:
        starts = utc(alert.startsAt)
        existing = self._stored_alert(c, alert)
        if existing is not None:
            if alert.resolved and existing.status != "resolved":
                c.execute(
                    update(incident_alerts)
                    .where(incident_alerts.c.id == existing.id)
                    .values(status="resolved", ends_at=utc(alert.endsAt))
                )
                if self._maybe_resolve(c, existing.incident_id):
                    enqueue_annotation(c, int(existing.incident_id))
                    self._event(c, int(existing.incident_id), "resolved")
                return None  # resolving closes the incident; the diagnosis stands
            return None  # a re-send of what we already have
        if alert.resolved:
            return None  # resolved before we ever saw it firing: nothing to diagnose
        iid = self._correlate(c, alert) or self._open_incident(c, alert)
        c.execute(
            incident_alerts.insert().values(
                incident_id=iid,
                fingerprint=alert.fingerprint,
                starts_at=starts,
                status=alert.status,
                alertname=alert.name,
                labels=alert.labels,
                annotations=alert.annotations,
                received_at=now(),
            )
        )
        inc = c.execute(select(incidents.c.entities, incidents.c.onset).where(incidents.c.id == iid)).one()
        ents = {
            "nodes": sorted(set(inc.entities["nodes"]) | set(alert.hosts)),
            "jobs": sorted(set(inc.entities["jobs"]) | ({alert.job} if alert.job else set())),
        }
        onset = min(utc(inc.onset) or starts, starts)
        c.execute(
            update(incidents)
            .where(incidents.c.id == iid)
            .values(entities=ents, onset=onset, updated_at=now(), revision=incidents.c.revision + 1)
        )
        new = [("node", h) for h in ents["nodes"] if h not in inc.entities["nodes"]]
        new += [("job", j) for j in ents["jobs"] if j not in inc.entities["jobs"]]
        for kind, value in new:
            c.execute(incident_entities.insert().values(incident_id=iid, kind=kind, value=value))
        return iid

    def _correlate(self, c: Connection, alert: Alert) -> int | None:
        """An open incident of the same cluster sharing a node or a job, begun within the window."""
        starts = utc(alert.startsAt)
        assert starts is not None
        keys = [and_(incident_entities.c.kind == "node", incident_entities.c.value == h) for h in alert.hosts]
        if alert.job:
            keys.append(and_(incident_entities.c.kind == "job", incident_entities.c.value == alert.job))
        if not keys:
            return None
        rows = c.execute(
            select(incidents.c.id, incidents.c.onset)
            .join(incident_entities, incident_entities.c.incident_id == incidents.c.id)
            .where(and_(incidents.c.state == "open", incidents.c.cluster == alert.cluster, or_(*keys)))
            .order_by(incidents.c.id)
        ).all()
        best: tuple[timedelta, int] | None = None
        for r in rows:
            onset = utc(r.onset)
            gap = abs(starts - onset) if onset is not None else CORRELATION_WINDOW
            if gap > CORRELATION_WINDOW:
                continue
            if alert.job and not self._joins_job_alert(c, int(r.id), alert.job):
                continue
            # a node's alert with several jobs' incidents open on that node joins the one begun nearest to it
            if best is None or (gap, int(r.id)) < best:
                best = (gap, int(r.id))
        return best[1] if best else None

    @staticmethod
    def _joins_job_alert(c: Connection, iid: int, job: str) -> bool:
        """A job's alert joins an incident about that job, or one rooted in a node (an alert naming no job):
        two jobs failing side by side on a shared node are two incidents unless the node itself is at fault."""
        alerts = [
            Alert.job_of(r.labels)
            for r in c.execute(select(incident_alerts.c.labels).where(incident_alerts.c.incident_id == iid))
        ]
        return not alerts or job in alerts or None in alerts

    def _open_incident(self, c: Connection, alert: Alert) -> int:
        t = now()
        res = c.execute(
            incidents.insert().values(
                cluster=alert.cluster,
                state="open",
                onset=utc(alert.startsAt),
                entities={"nodes": [], "jobs": []},
                created_at=t,
                updated_at=t,
            )
        )
        return int(res.inserted_primary_key[0])  # type: ignore[index]

    def _event(self, c: Connection, iid: int, kind: Kind, previous: str | None = None) -> None:
        enqueue_event(c, self.settings.notify, iid, kind, self.base_url, self.store.instance_id, previous)

    def _maybe_resolve(self, c: Connection, iid: int) -> bool:
        open_alerts = c.execute(
            select(func.count())
            .select_from(incident_alerts)
            .where(and_(incident_alerts.c.incident_id == iid, incident_alerts.c.status != "resolved"))
        ).scalar()
        if open_alerts == 0:
            end = c.execute(
                select(func.max(incident_alerts.c.ends_at)).where(incident_alerts.c.incident_id == iid)
            ).scalar()
            c.execute(
                update(incidents)
                .where(incidents.c.id == iid)
                .values(state="resolved", resolved_at=utc(end) or now(), updated_at=now())
            )
            return True
        return False

    def diagnose_incident(self, iid: int, force: bool = False) -> Diagnosis | None:
        """Bring the incident's diagnosis up to date under its lease: None when there was nothing to do (another
        thread or replica diagnosed this revision) or another replica holds the lease (it diagnoses again if an alert
        joined meanwhile). `force` diagnoses again even when nothing changed."""
        with self._diagnosing_lock:
            entry = self._diagnosing.setdefault(iid, (threading.Lock(), [0]))
            entry[1][0] += 1
        try:
            with entry[0]:
                name = f"diagnose:{iid}"
                if not leases.acquire(self.store, name, self.owner, self._lease_s):
                    return None
                try:
                    d = None
                    for n in range(1 + MAX_REDIAGNOSES):  # and again for alerts recorded while it ran
                        with self.store.tx() as c:
                            if not (force or self._pending(c, {iid})):
                                break
                        force = False
                        if n:  # another full diagnosis: renew the lease taken above
                            leases.acquire(self.store, name, self.owner, self._lease_s)
                        d = self._diagnose_incident(iid)
                    return d
                finally:
                    leases.release(self.store, name, self.owner)
        finally:
            with self._diagnosing_lock:
                entry[1][0] -= 1
                if not entry[1][0]:
                    del self._diagnosing[iid]

    def _breaker_metrics(self) -> None:
        self.metrics.breaker_open.set({"closed": 0.0, "open": 1.0, "half_open": 0.5}[self.breaker.state])
        with self._diagnosing_lock:  # two workers must not count one opening twice
            if self.breaker.opened > self._breaker_seen:
                self.metrics.breaker_opened.inc(self.breaker.opened - self._breaker_seen)
                self._breaker_seen = self.breaker.opened

    def _diagnose_incident(self, iid: int) -> Diagnosis:
        t0 = time.perf_counter()
        with self.store.tx() as c:
            inc = c.execute(select(incidents).where(incidents.c.id == iid)).one()
            alerts = c.execute(
                select(incident_alerts)
                .where(incident_alerts.c.incident_id == iid)
                .order_by(incident_alerts.c.starts_at, incident_alerts.c.id)
            ).all()
        primary = alerts[0]
        alert = Alert(
            status=primary.status,
            labels=primary.labels,
            annotations=primary.annotations,
            startsAt=primary.starts_at,
            fingerprint=primary.fingerprint,
        )
        nodes, jobs = list(inc.entities["nodes"]), list(inc.entities["jobs"])
        seen_revision = int(inc.revision)
        onset = utc(inc.onset) or now()
        start, end = onset - timedelta(minutes=10), min(now(), onset + timedelta(minutes=15))
        a = self.settings.analyzer
        metrics, items = gather_metrics(
            a.prometheus_url,
            nodes,
            jobs,
            start,
            end,
            a.prometheus_timeout_s,
            breaker=self.breaker,
            budget=a.evidence_budget_s,
        )
        self._breaker_metrics()
        job = job_record(metrics, jobs[0]) if jobs else None
        if job:
            nodes = sorted(set(nodes) | set(job["nodes"]))
        logs, log_item = gather_logs(self.store, nodes, jobs, start - timedelta(minutes=5), end)
        items.append(log_item)
        bundle = build_bundle(alert, logs, metrics, job)
        d = self.engine.diagnose(bundle)
        missing = sorted({i.name for i in items if i.status != "success"})
        d = d.model_copy(
            update={
                "missing_evidence": sorted(
                    set(d.missing_evidence)
                    | {
                        f"{m} ({'error' if any(i.status == 'error' and i.name == m for i in items) else 'no data'})"
                        for m in missing
                    }
                )
            }
        )
        first = inc.root_cause is None
        # fleet memory: the unit's earlier incidents may escalate, corroborate or re-attribute this one
        event = fleet.Event(iid, onset, d.root_cause, d.culprit.node, d.culprit.gpu, d.culprit.job,
                            fleet_store.xids_of(bundle))  # fmt: skip
        with self.store.tx() as c:
            past = fleet_store.past_events(c, event.node, onset)
        found = fleet.evaluate(event, past)
        d = fleet.apply(d, found)
        diagnosis_json = {
            **d.to_json_dict(),
            "history": {"conclusions": [x.to_json() for x in found], "units": fleet.unit_summary(event, past)},
        }
        with self.store.tx() as c:
            fleet_store.record(c, dataclasses.replace(event, cause=d.root_cause))
            c.execute(
                update(incidents)
                .where(incidents.c.id == iid)
                .values(
                    root_cause=d.root_cause,
                    confidence=d.confidence,
                    node=d.culprit.node,
                    gpu=d.culprit.gpu,
                    job=d.culprit.job,
                    summary=d.summary,
                    diagnosis=as_json(diagnosis_json),
                    evidence=as_json(items_json(items)),
                    updated_at=now(),
                    # an alert that joined while this ran leaves the incident pending: it is diagnosed again
                    diagnosed_revision=seen_revision,
                )
            )
            c.execute(
                diagnoses.insert().values(
                    incident_id=iid,
                    at=now(),
                    revision=seen_revision,
                    alerts=len(alerts),
                    root_cause=d.root_cause,
                    confidence=d.confidence,
                    node=d.culprit.node,
                    gpu=d.culprit.gpu,
                    job=d.culprit.job,
                    model=d.model[:200],
                )
            )
            # the annotation follows the incident: created on the first diagnosis, rewritten on later ones
            enqueue_annotation(c, iid)
            culprit = (d.culprit.node, d.culprit.gpu, d.culprit.job)
            if first:
                self._event(c, iid, "opened")
            elif d.root_cause != inc.root_cause or culprit != (inc.node, inc.gpu, inc.job):
                self._event(c, iid, "rediagnosed", previous=inc.root_cause)
        self.metrics.latency.observe(time.perf_counter() - t0)
        if first:
            self.metrics.incidents.labels(d.root_cause).inc()
        try:  # a Slurm action that cannot run is recorded as failed; it never undoes the diagnosis
            self.actions.after_diagnosis(iid, d)
        except Exception:
            log.exception("incident %d: proposing actions failed", iid)
        log.info("incident %d: %s (%.2f) %s", iid, d.root_cause, d.confidence, d.summary)
        return d

    # ---------------------------------------------------------------- queries
    def list_incidents(
        self,
        *,
        state: str | None,
        root_cause: str | None,
        node: str | None,
        job: str | None,
        limit: int,
        offset: int,
        since: datetime | None = None,
    ) -> dict[str, Any]:
        conds = []
        if since is not None:
            conds.append(incidents.c.onset >= utc(since))
        if state:
            conds.append(incidents.c.state == state)
        if root_cause:
            conds.append(incidents.c.root_cause == root_cause)
        if node:
            conds.append(incidents.c.node == node)
        if job:
            conds.append(incidents.c.job == job)
        with self.store.tx() as c:
            total = c.execute(select(func.count()).select_from(incidents).where(*conds)).scalar() or 0
            rows = c.execute(
                select(incidents).where(*conds).order_by(incidents.c.id.desc()).limit(limit).offset(offset)
            ).all()
        return {"total": total, "limit": limit, "offset": offset, "items": [self._summary(r) for r in rows]}

    def cause_counts(self, state: str | None = None) -> list[tuple[str, int]]:
        """(root cause, incidents) for diagnosed incidents, most first."""
        q = select(incidents.c.root_cause, func.count()).where(incidents.c.root_cause.is_not(None))
        if state:
            q = q.where(incidents.c.state == state)
        with self.store.tx() as c:
            rows = c.execute(q.group_by(incidents.c.root_cause)).all()
        return sorted(((str(r[0]), int(r[1])) for r in rows), key=lambda x: (-x[1], x[0]))

    def _summary(self, r: Row[Any]) -> dict[str, Any]:
        return {
            "id": r.id,
            "cluster": r.cluster,
            "state": r.state,
            "onset": _iso(r.onset),
            "resolved_at": _iso(r.resolved_at),
            "root_cause": r.root_cause,
            "confidence": r.confidence,
            "culprit": {k: v for k, v in (("node", r.node), ("gpu", r.gpu), ("job", r.job)) if v},
            "summary": r.summary,
            "url": f"{self.base_url}/incidents/{r.id}",
        }

    def get_incident(self, iid: int) -> dict[str, Any]:
        with self.store.tx() as c:
            r = c.execute(select(incidents).where(incidents.c.id == iid)).first()
            if r is None:
                raise NotFound(f"incident {iid} not found")
            alerts = c.execute(
                select(incident_alerts)
                .where(incident_alerts.c.incident_id == iid)
                .order_by(incident_alerts.c.starts_at)
            ).all()
            fb = c.execute(select(feedback).where(feedback.c.incident_id == iid)).all()
            history = c.execute(select(diagnoses).where(diagnoses.c.incident_id == iid).order_by(diagnoses.c.id)).all()
        return {
            **self._summary(r),
            "entities": r.entities,
            # an alert joined after the last diagnosis: a newer one is on its way
            "diagnosis_pending": r.diagnosed_revision != r.revision,
            "diagnosis": r.diagnosis,
            "evidence": r.evidence,
            "alerts": [
                {
                    "alertname": a.alertname,
                    "status": a.status,
                    "fingerprint": a.fingerprint,
                    "starts_at": _iso(a.starts_at),
                    "ends_at": _iso(a.ends_at),
                    "labels": a.labels,
                    "annotations": a.annotations,
                }
                for a in alerts
            ],
            "timeline": timeline(alerts, [dict(h._mapping) for h in history], _iso),
            "grafana_annotation_id": r.grafana_annotation_id,
            "actions": self.actions.for_incident(iid),
            "feedback": [
                {
                    "correct": f.correct,
                    "true_root_cause": f.true_root_cause,
                    "comment": f.comment,
                    "created_at": _iso(f.created_at),
                }
                for f in fb
            ],
        }

    def add_feedback(self, iid: int, correct: bool, true_root_cause: str | None, comment: str | None) -> None:
        check_feedback(correct, true_root_cause)
        with self.store.tx() as c:
            if c.execute(select(incidents.c.id).where(incidents.c.id == iid)).first() is None:
                raise NotFound(f"incident {iid} not found")
            c.execute(
                feedback.insert().values(
                    incident_id=iid, correct=correct, true_root_cause=true_root_cause, comment=comment, created_at=now()
                )
            )


def check_feedback(correct: bool, true_root_cause: str | None) -> None:
    """A "wrong" needs the true cause, one of the known ids (the API model, the pages and MCP all ask this)."""
    if not correct and true_root_cause not in root_cause_ids():
        raise BadRequest("true_root_cause: required when correct is false, and must be a known root-cause id")


def enqueue_annotation(c: Connection, iid: int) -> None:
    """One pending outbox entry per incident: the writer always sends the incident's current state."""
    pending = c.execute(
        select(grafana_outbox.c.id).where(and_(grafana_outbox.c.incident_id == iid, grafana_outbox.c.done.is_(False)))
    ).first()
    if pending is None:
        c.execute(
            grafana_outbox.insert().values(incident_id=iid, action="upsert", attempts=0, next_at=now(), done=False)
        )


def _iso(dt: datetime | None) -> str | None:
    d = utc(dt)
    return d.isoformat().replace("+00:00", "Z") if d else None
