"""Fleet events in the store: written with each diagnosis, read back for a unit's history."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, delete, select
from sqlalchemy.engine import Connection

from hpcmind.contract import EvidenceBundle

from ..rca.xid import parse_xids
from ..store import unit_events, utc
from .history import Event

LOOKBACK = timedelta(days=30)  # the widest rule window and the page's history


def xids_of(bundle: EvidenceBundle) -> tuple[int, ...]:
    """The Xid codes the evidence carries: the alert's err_code (dcgm-exporter), kernel lines, the DCGM series."""
    codes: set[int] = set()
    if bundle.alert is not None:
        for k in ("err_code", "xid"):
            v = bundle.alert.labels.get(k, "")
            if v.isdigit():
                codes.add(int(v))
    for e in bundle.logs:
        codes.update(x.code for x in parse_xids(e.line))
    for s in bundle.metrics:
        if s.name == "DCGM_FI_DEV_XID_ERRORS":
            codes.update(int(v) for _, v in s.values if v > 0 and float(v).is_integer())
    return tuple(sorted(codes))


def past_events(c: Connection, node: str | None, before: datetime) -> list[Event]:
    if not node:
        return []
    rows = c.execute(
        select(unit_events).where(
            and_(unit_events.c.node == node, unit_events.c.at >= before - LOOKBACK, unit_events.c.at <= before)
        )
    ).all()
    return [Event(r.incident_id, utc(r.at), r.cause, r.node, r.gpu, r.job, tuple(r.xids or ())) for r in rows]


def record(c: Connection, e: Event) -> None:
    c.execute(delete(unit_events).where(unit_events.c.incident_id == e.incident))
    c.execute(
        unit_events.insert().values(
            incident_id=e.incident, at=e.at, cause=e.cause, node=e.node, gpu=e.gpu, job=e.job, xids=list(e.xids)
        )
    )
