"""The incident store: SQLAlchemy over SQLite (WAL) by default or PostgreSQL by URL, with versioned migrations."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, overload

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine

metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)
payloads = Table(
    "payloads",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("body", JSON, nullable=False),
    Column("processed", Boolean, nullable=False, default=False),
    Index("ix_payloads_processed", "processed"),
)
incidents = Table(
    "incidents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("cluster", String(200), nullable=False),
    Column("state", String(20), nullable=False),  # open | resolved
    Column("onset", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True)),
    Column("root_cause", String(64)),
    Column("confidence", Float),
    Column("node", String(200)),
    Column("gpu", String(64)),
    Column("job", String(64)),
    Column("summary", Text),
    Column("diagnosis", JSON),
    Column("evidence", JSON),
    Column("entities", JSON, nullable=False),  # {"nodes": [...], "jobs": [...]}
    Column("grafana_annotation_id", Integer),
    # bumped in the transaction that adds an alert; a diagnosis stores the revision it read. revision >
    # diagnosed_revision means an accepted alert is not yet reflected in a diagnosis (e.g. a crash in between)
    Column("revision", Integer, nullable=False, default=0, server_default="0"),
    Column("diagnosed_revision", Integer, nullable=False, default=0, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_incidents_state", "state"),
    Index("ix_incidents_root_cause", "root_cause"),
)
incident_alerts = Table(
    "incident_alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("incident_id", Integer, ForeignKey("incidents.id"), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("ends_at", DateTime(timezone=True)),
    Column("status", String(20), nullable=False),
    Column("alertname", String(200), nullable=False),
    Column("labels", JSON, nullable=False),
    Column("annotations", JSON, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("fingerprint", "starts_at", name="uq_alert_fingerprint_start"),
)
log_lines = Table(
    "log_lines",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("ts", DateTime(timezone=True), nullable=False),
    Column("source", String(300), nullable=False),
    Column("line", Text, nullable=False),
    Index("ix_log_lines_ts", "ts"),
    Index("ix_log_lines_source", "source"),
)
feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("incident_id", Integer, ForeignKey("incidents.id"), nullable=False),
    Column("correct", Boolean, nullable=False),
    Column("true_root_cause", String(64)),
    Column("comment", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
grafana_outbox = Table(
    "grafana_outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("incident_id", Integer, ForeignKey("incidents.id"), nullable=False),
    Column("action", String(20), nullable=False),  # upsert
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_at", DateTime(timezone=True), nullable=False),
    Column("done", Boolean, nullable=False, default=False),
    Column("last_error", Text),
    Index("ix_outbox_pending", "done", "next_at"),
)


# incident events for the outgoing webhook and Slack: written in the transaction that changed the incident, so an
# event is never lost or sent for a change that did not commit; one row per event and target
notify_outbox = Table(
    "notify_outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("incident_id", Integer, ForeignKey("incidents.id"), nullable=False),
    Column("event_id", String(120), nullable=False),
    Column("target", String(10), nullable=False),  # webhook | slack
    Column("payload", JSON, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_at", DateTime(timezone=True), nullable=False),
    Column("done", Boolean, nullable=False, default=False),
    Column("last_error", Text),
    UniqueConstraint("event_id", "target", name="uq_notify_event_target"),
    Index("ix_notify_pending", "done", "next_at"),
)


incident_entities = Table(
    "incident_entities",
    metadata,
    Column("incident_id", Integer, ForeignKey("incidents.id"), nullable=False),
    Column("kind", String(10), nullable=False),  # node | job
    Column("value", String(200), nullable=False),
    UniqueConstraint("incident_id", "kind", "value", name="uq_incident_entity"),
    Index("ix_incident_entities_lookup", "kind", "value"),
)


# every diagnosis an incident received, in order: the page's timeline shows what changed and when (the incident row
# holds only the latest)
diagnoses = Table(
    "diagnoses",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("incident_id", Integer, ForeignKey("incidents.id"), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("revision", Integer, nullable=False),  # the incident revision (alerts recorded) it read
    Column("alerts", Integer, nullable=False),
    Column("root_cause", String(64), nullable=False),
    Column("confidence", Float, nullable=False),
    Column("node", String(200)),
    Column("gpu", String(64)),
    Column("job", String(64)),
    Column("model", String(200), nullable=False),
    Index("ix_diagnoses_incident", "incident_id", "id"),
)


# the actions log (drain, resume, requeue through Slurm): what was proposed, decided and done, and why a breaker or an
# operator refused; one row per incident, kind and target, so a re-diagnosis never acts twice
actions = Table(
    "actions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("incident_id", Integer, ForeignKey("incidents.id")),  # none: an operator's own request (resume)
    Column("kind", String(16), nullable=False),  # drain | resume | requeue
    Column("target", String(200), nullable=False),  # a node name or a job id
    Column("reason", String(300), nullable=False),
    Column("mode", String(16), nullable=False),  # the actions mode it was proposed under
    # dry_run | awaiting_approval | done | refused | failed | rejected
    Column("state", String(24), nullable=False),
    Column("detail", Text, nullable=False, default=""),
    Column("requested_by", String(100), nullable=False),
    Column("decided_by", String(100)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("decided_at", DateTime(timezone=True)),
    UniqueConstraint("incident_id", "kind", "target", name="uq_action_incident_kind_target"),
    Index("ix_actions_state", "state", "kind", "decided_at"),
)


# fleet memory: each diagnosed incident as an event on its node and GPU (the latest diagnosis; one row per incident)
unit_events = Table(
    "unit_events",
    metadata,
    Column("incident_id", Integer, ForeignKey("incidents.id"), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("cause", String(64), nullable=False),
    Column("node", String(200)),
    Column("gpu", String(64)),
    Column("job", String(64)),
    Column("xids", JSON, nullable=False),
    Index("ix_unit_events_node", "node", "at"),
)


store_meta = Table(
    "store_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(200), nullable=False),
)
# who does a piece of shared work until when (analyzer replicas on one store): an incident's diagnosis, the outbox
# drain, the sweep of what a dead replica left; see leases.py
leases = Table(
    "leases",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("until", DateTime(timezone=True), nullable=False),
)


def _v1(conn: Connection) -> None:
    metadata.create_all(conn, tables=[payloads, incidents, incident_alerts, log_lines, feedback, grafana_outbox])


def _v2(conn: Connection) -> None:
    """Correlation looks incidents up by node or job instead of scanning every open incident."""
    metadata.create_all(conn, tables=[incident_entities])
    for row in conn.execute(select(incidents.c.id, incidents.c.entities)).all():
        for kind, key in (("node", "nodes"), ("job", "jobs")):
            for v in row.entities.get(key, []):
                conn.execute(incident_entities.insert().values(incident_id=row.id, kind=kind, value=v))


def _v3(conn: Connection) -> None:
    """Revisions, so that an incident whose alerts were recorded but never diagnosed is found again after a crash;
    incidents stored before this version without a diagnosis are marked pending."""
    have = {c["name"] for c in inspect(conn).get_columns("incidents")}
    for col in ("revision", "diagnosed_revision"):
        if col not in have:  # a store created at v1 by this code already has them
            conn.execute(text(f"ALTER TABLE incidents ADD COLUMN {col} INTEGER NOT NULL DEFAULT 0"))
    conn.execute(update(incidents).where(incidents.c.root_cause.is_(None)).values(revision=1, diagnosed_revision=0))


def _v4(conn: Connection) -> None:
    """A stable id for this store: what marks its Grafana annotations as its own (idempotent creation)."""
    metadata.create_all(conn, tables=[store_meta])
    conn.execute(store_meta.insert().values(key="instance_id", value=uuid.uuid4().hex[:16]))


def _v5(conn: Connection) -> None:
    """The outbox of incident events (outgoing webhook, Slack)."""
    metadata.create_all(conn, tables=[notify_outbox])


def _v6(conn: Connection) -> None:
    """The history of diagnoses; an incident diagnosed before this version starts it with its latest one."""
    metadata.create_all(conn, tables=[diagnoses])
    have = set(conn.execute(select(diagnoses.c.incident_id)).scalars())
    for r in conn.execute(select(incidents).where(incidents.c.root_cause.is_not(None))).all():
        if r.id in have:
            continue
        conn.execute(
            diagnoses.insert().values(
                incident_id=r.id,
                at=r.updated_at,
                revision=r.diagnosed_revision,
                alerts=0,
                root_cause=r.root_cause,
                confidence=r.confidence or 0.0,
                node=r.node,
                gpu=r.gpu,
                job=r.job,
                model=str((r.diagnosis or {}).get("model", ""))[:200],
            )
        )


def _v7(conn: Connection) -> None:
    """The actions log (drain, resume, requeue)."""
    metadata.create_all(conn, tables=[actions])


def _v8(conn: Connection) -> None:
    """Fleet memory; incidents diagnosed before this version become events of their node and GPU."""
    metadata.create_all(conn, tables=[unit_events])
    have = set(conn.execute(select(unit_events.c.incident_id)).scalars())
    for r in conn.execute(select(incidents).where(incidents.c.root_cause.is_not(None))).all():
        if r.id in have:
            continue
        conn.execute(
            unit_events.insert().values(
                incident_id=r.id, at=r.onset, cause=r.root_cause, node=r.node, gpu=r.gpu, job=r.job, xids=[]
            )
        )


def _v9(conn: Connection) -> None:
    """Leases, for several analyzer replicas on one store."""
    metadata.create_all(conn, tables=[leases])


# Append-only: each step moves the schema one version forward.
MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [
    (1, _v1),
    (2, _v2),
    (3, _v3),
    (4, _v4),
    (5, _v5),
    (6, _v6),
    (7, _v7),
    (8, _v8),
    (9, _v9),
]


def now() -> datetime:
    return datetime.now(UTC)


@overload
def utc(dt: datetime) -> datetime: ...
@overload
def utc(dt: None) -> None: ...
def utc(dt: datetime | None) -> datetime | None:
    """A stored time with its zone (SQLite hands back naive UTC datetimes)."""
    if dt is None:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        eng = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(eng, "connect")
        def _pragmas(dbapi_conn: Any, _: Any) -> None:
            dbapi_conn.isolation_level = None  # transactions begin below, not in the driver
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")  # a 200 to Alertmanager means the payload is on disk
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(eng, "begin")
        def _begin(conn: Connection) -> None:
            # several workers write: a deferred transaction that read before another committed could not write
            # (SQLITE_BUSY at once, no busy wait); taking the write lock at BEGIN makes them wait their turn
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return eng
    return create_engine(url, pool_pre_ping=True)


# PostgreSQL advisory lock keys (any two constants of ours): replicas starting together migrate one at a time, and
# alerts are recorded (deduplicated and correlated) by one replica at a time
MIGRATE_LOCK, RECORD_LOCK = 0x48504D01, 0x48504D02


def serialize(conn: Connection, key: int) -> None:
    """Hold a store-wide lock until this transaction ends. SQLite needs none: BEGIN IMMEDIATE already lets one
    writer in at a time, across processes too."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


def migrate(engine: Engine) -> int:
    with engine.begin() as conn:
        serialize(conn, MIGRATE_LOCK)
        metadata.create_all(conn, tables=[schema_version])
        current = conn.execute(select(func.max(schema_version.c.version))).scalar() or 0
        for version, step in MIGRATIONS:
            if version > current:
                step(conn)
                conn.execute(schema_version.insert().values(version=version, applied_at=now()))
                current = version
    return int(current)


class Store:
    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self.version = migrate(self.engine)
        with self.tx() as c:
            row = c.execute(select(store_meta.c.value).where(store_meta.c.key == "instance_id")).scalar()
            self.instance_id = str(row)

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> bool:
        with self.engine.connect() as c:
            c.execute(text("SELECT 1"))
        return True


def as_json(v: Any) -> Any:
    return json.loads(json.dumps(v, default=str))
