"""Open incidents as a Prometheus series, read from the store at scrape time: what Grafana's incident tables show.

`hpcmind_incident_open{id, cluster, root_cause, node, gpu, job} = confidence`, one series per open diagnosed incident
(the newest MAX_SERIES, so a storm cannot blow up the scrape). A series disappears when its incident resolves.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from .store import Store, incidents

log = logging.getLogger(__name__)
MAX_SERIES = 500
LABELS = ("id", "cluster", "root_cause", "node", "gpu", "job")


class OpenIncidents(Collector):
    def __init__(self, store: Store) -> None:
        self.store = store

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # no store query when the collector is registered

    def collect(self) -> Iterator[GaugeMetricFamily]:
        fam = GaugeMetricFamily(
            "hpcmind_incident_open",
            f"Open diagnosed incidents (newest {MAX_SERIES}); the value is the diagnosis' confidence.",
            labels=list(LABELS),
        )
        c = incidents.c
        q = (
            select(c.id, c.cluster, c.root_cause, c.node, c.gpu, c.job, c.confidence)
            .where(c.state == "open", c.root_cause.is_not(None))
            .order_by(c.id.desc())
            .limit(MAX_SERIES)
        )
        try:
            with self.store.tx() as conn:
                rows = conn.execute(q).all()
        except SQLAlchemyError as e:  # the rest of /metrics must still answer while the store is away
            log.warning("open incidents for /metrics: %s", e)
            rows = []
        for r in rows:
            fam.add_metric(
                [str(r.id), r.cluster or "", r.root_cause or "", r.node or "", r.gpu or "", r.job or ""],
                float(r.confidence or 0.0),
            )
        yield fam
